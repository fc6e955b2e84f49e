-- Posts in different rooms no longer wait for each other (docs/DESIGN.md, "Ids in
-- commit order").
--
-- Before, every post and every room event took one exclusive advisory lock, the
-- message-order lock, before taking an id, so ids became visible in commit order
-- across all rooms. Now:
--
-- * a post, edit, deletion or reaction takes the message-order lock SHARED and an
--   exclusive lock on each room it writes (`chat_lock_rooms`), so writes to different
--   rooms run side by side, and the ids of one room still become visible in commit
--   order (every writer of the room holds its lock from before its id to its commit);
-- * membership changes, room updates and account deletions still take the
--   message-order lock exclusive: they wait for the writes in flight and hold off new
--   ones, so a membership check under either lock sees every change before it;
-- * across rooms a later id may now commit first. The outbox relay still publishes in
--   id order: finding a hole below a committed id, it waits for every transaction that
--   could still fill it (`chat_wait_for_entry_writers`) and reads again; what is then
--   still missing was never committed (a rolled-back batch, a conflicting insert).
--
-- The relay can tell who could fill a hole because every id is taken by
-- `chat_next_entry_id`: it gives the transaction its xid and a shared lock keyed by
-- that xid before it takes the id. A transaction that took an id below one the relay
-- saw committed took it before that commit, so it was in progress in the relay's
-- snapshot (its xid in the snapshot's list), and it holds its key until it ends.
-- Transactions in the list that took no id hold no key and cost the relay no wait.

-- Advisory lock classes (the two-key form, a key space apart from the one-key locks):
-- 0x6368726D "chrm" for rooms, 0x63687772 "chwr" for the writers of ids.

CREATE FUNCTION chat_entry_writer_key(xid xid8) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT (xid::text::bigint % 2147483647)::integer
$$;

CREATE SEQUENCE chat_entry_ids AS bigint;
DO $$
BEGIN
    EXECUTE format(
        'SELECT setval(''chat_entry_ids'', last_value, is_called) FROM %s',
        pg_get_serial_sequence('messages', 'id'));
END;
$$;

-- The next id of messages and room events (one sequence orders both).
CREATE FUNCTION chat_next_entry_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1667790706, chat_entry_writer_key(pg_current_xact_id()));
    RETURN nextval('chat_entry_ids');
END;
$$;

ALTER TABLE room_events ALTER COLUMN id SET DEFAULT chat_next_entry_id();
ALTER TABLE messages ALTER COLUMN id DROP IDENTITY;
ALTER TABLE messages ALTER COLUMN id SET DEFAULT chat_next_entry_id();
ALTER SEQUENCE chat_entry_ids OWNED BY messages.id;

-- Wait until every transaction in progress in `seen` (a snapshot the relay read the
-- outbox in) that took an id has ended; those that took none are passed at once.
CREATE FUNCTION chat_wait_for_entry_writers(seen pg_snapshot) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    writer xid8;
BEGIN
    FOR writer IN SELECT pg_snapshot_xip(seen) LOOP
        PERFORM pg_advisory_xact_lock(1667790706, chat_entry_writer_key(writer));
    END LOOP;
END;
$$;

-- The locks of a write into the rooms `room_ids` (posts, edits, deletions, reactions):
-- the message-order lock shared, then each room's, in one order (by key) so that two
-- batches never deadlock. Rooms whose keys collide only share a lock.
CREATE FUNCTION chat_lock_rooms(room_ids uuid[], order_lock_key bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    room_key integer;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(order_lock_key);
    FOR room_key IN SELECT DISTINCT hashtext(r::text) FROM unnest(room_ids) r ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1667789421, room_key);
    END LOOP;
END;
$$;

-- Store a batch of posted messages in one round trip (the batch may span rooms).
--
-- As before (0007), with the rooms' locks in place of the one order lock: the checks
-- of each row (membership, archived, the quoted message) still run under locks that
-- every change they depend on takes too.
CREATE OR REPLACE FUNCTION chat_store_messages(
    client_ids uuid[], owner_ids uuid[], room_ids uuid[], user_names text[], texts text[],
    reply_tos bigint[], order_lock_key bigint, notify_channel text
) RETURNS TABLE (
    id bigint, client_id uuid, owner_id uuid, room_id uuid, user_name text, text text,
    created_at timestamptz, reply_to bigint, reply_owner uuid, reply_user_name text,
    reply_excerpt text, edited_at timestamptz, deleted boolean, created boolean, refused text
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    stored record;
    new_ids bigint[] := '{}';
    newest_new bigint;
    inserted integer := 0;
    authors uuid[];
    verdicts text[];
BEGIN
    PERFORM chat_lock_rooms(room_ids, order_lock_key);
    SELECT coalesce(array_agg(u.id), '{}') INTO authors
    FROM (SELECT u.id FROM users u
          WHERE u.id = ANY (owner_ids)
          ORDER BY u.id
          FOR KEY SHARE) u;
    SELECT array_agg(
        CASE
            WHEN NOT (b.owner_id = ANY (authors)) THEN 'no_account'
            WHEN r.id IS NULL THEN 'not_member'
            WHEN r.id <> '00000000-0000-0000-0000-000000000000' AND NOT EXISTS (
                SELECT 1 FROM room_members rm
                WHERE rm.room_id = b.room_id AND rm.user_id = b.owner_id) THEN 'not_member'
            WHEN r.archived_at IS NOT NULL THEN 'archived'
            WHEN b.reply_to IS NOT NULL AND q.id IS NULL THEN 'reply_not_found'
            WHEN q.deleted_at IS NOT NULL THEN 'reply_deleted'
        END ORDER BY b.position)
    INTO verdicts
    FROM unnest(owner_ids, room_ids, reply_tos) WITH ORDINALITY
        AS b(owner_id, room_id, reply_to, position)
    LEFT JOIN rooms r ON r.id = b.room_id
    LEFT JOIN messages q ON q.id = b.reply_to AND q.room_id = b.room_id;
    FOR stored IN
        WITH added AS (
            INSERT INTO messages AS m
                (client_id, owner_id, room_id, user_name, text, reply_to, reply_excerpt)
            SELECT b.client_id, b.owner_id, b.room_id, b.user_name, b.text, b.reply_to,
                   chat_plain_excerpt(q.text, 140)
            FROM unnest(client_ids, owner_ids, room_ids, user_names, texts, reply_tos)
                WITH ORDINALITY
                AS b(client_id, owner_id, room_id, user_name, text, reply_to, position)
            LEFT JOIN messages q ON q.id = b.reply_to
            WHERE verdicts[b.position] IS NULL
            ORDER BY b.position
            ON CONFLICT ON CONSTRAINT messages_owner_client_id_key DO NOTHING
            RETURNING m.id, m.client_id, m.owner_id, m.room_id, m.user_name, m.text,
                      m.created_at, m.reply_to, m.reply_excerpt
        )
        SELECT a.*, q.owner_id AS quoted_owner, q.user_name AS quoted_name
        FROM added a LEFT JOIN messages q ON q.id = a.reply_to
        ORDER BY a.id
    LOOP
        id := stored.id; client_id := stored.client_id; owner_id := stored.owner_id;
        room_id := stored.room_id; user_name := stored.user_name; text := stored.text;
        created_at := stored.created_at; reply_to := stored.reply_to;
        reply_owner := stored.quoted_owner; reply_user_name := stored.quoted_name;
        reply_excerpt := stored.reply_excerpt; edited_at := NULL; deleted := false;
        created := true; refused := NULL;
        RETURN NEXT;
        new_ids := new_ids || stored.id;
        newest_new := greatest(newest_new, stored.id);
        inserted := inserted + 1;
    END LOOP;
    IF inserted < cardinality(client_ids) THEN
        -- Retries: keys stored before this call (by another call, possibly into
        -- another room and with a larger id, if the same key was sent to two rooms).
        RETURN QUERY
            SELECT m.id, m.client_id, m.owner_id, m.room_id, m.user_name, m.text, m.created_at,
                   m.reply_to, q.owner_id, q.user_name, m.reply_excerpt, m.edited_at,
                   m.deleted_at IS NOT NULL, false, NULL::text
            FROM messages m
            JOIN (SELECT DISTINCT k.owner_id, k.client_id
                  FROM unnest(owner_ids, client_ids) WITH ORDINALITY
                      AS k(owner_id, client_id, position)
                  WHERE verdicts[k.position] IS NULL) k
                ON m.owner_id = k.owner_id AND m.client_id = k.client_id
            LEFT JOIN messages q ON q.id = m.reply_to
            WHERE NOT (m.id = ANY (new_ids));
        -- Refused rows, with the reason.
        RETURN QUERY
            SELECT DISTINCT NULL::bigint, k.client_id, k.owner_id, k.room_id, NULL::text,
                   NULL::text, NULL::timestamptz, NULL::bigint, NULL::uuid, NULL::text,
                   NULL::text, NULL::timestamptz, false, false, verdicts[k.position]
            FROM unnest(owner_ids, client_ids, room_ids) WITH ORDINALITY
                AS k(owner_id, client_id, room_id, position)
            WHERE verdicts[k.position] IS NOT NULL;
    END IF;
    IF notify_channel IS NOT NULL AND newest_new IS NOT NULL THEN
        PERFORM pg_notify(notify_channel, newest_new::text);
    END IF;
END;
$$;
