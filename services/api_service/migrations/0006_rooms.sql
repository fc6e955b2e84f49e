-- Rooms, memberships, and the room events that travel in the message order (docs/ROOMS.md).
--
-- Every message belongs to a room. The global room (the nil UUID) is the feed that
-- existed before rooms: every account is a member of it without a membership row, and
-- every message stored before this migration is in it.

CREATE TABLE rooms (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    name        text NOT NULL DEFAULT '',
    topic       text NOT NULL DEFAULT '',
    -- Direct rooms only: '<smaller user id>:<larger user id>'. The unique key makes one
    -- room per pair, also when both people open it at the same moment.
    direct_key  text UNIQUE,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz,
    CONSTRAINT rooms_direct_key_iff_direct CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);
-- The public directory, searched by name.
CREATE INDEX rooms_public_name_idx ON rooms (lower(name), id) WHERE kind = 'public';

INSERT INTO rooms (id, kind, name) VALUES ('00000000-0000-0000-0000-000000000000', 'public', 'General');

CREATE TABLE room_members (
    room_id   uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user_idx ON room_members (user_id, room_id);

-- Messages: the room, and an index that serves each room's history pages and newest
-- message. No foreign key: the store function checks the room (and the author's
-- membership) for each row under the order lock, and rooms are archived, never deleted.
ALTER TABLE messages
    ADD COLUMN room_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
CREATE INDEX messages_room_id_idx ON messages (room_id, id);

-- Finding a person to message by name prefix.
CREATE INDEX users_name_prefix_idx ON users (lower(name) text_pattern_ops);

-- Membership changes and room updates, in the same order as messages: each takes the
-- next id of the messages' own sequence while its transaction holds the message-order
-- lock (db/messages.py), so the relay publishes messages and events as one ordered
-- stream and a removal is exactly "nothing of the room after this id".
--
-- kind: 'joined' | 'left' | 'role' (subject = the member concerned), 'updated' (the
-- room's name, topic or archived state; no subject). payload: the event as clients
-- receive it, without `_id` (services/shared/room_events.py).
CREATE TABLE room_events (
    id         bigint PRIMARY KEY,
    room_id    uuid NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('joined', 'left', 'role', 'updated')),
    subject    uuid,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
DO $$
BEGIN
    EXECUTE format(
        'ALTER TABLE room_events ALTER COLUMN id SET DEFAULT nextval(%L::regclass)',
        pg_get_serial_sequence('messages', 'id'));
END;
$$;

-- Store a batch of posted messages in one round trip (the batch may span rooms).
--
-- As before (0004), plus the room: a row is refused, with the reason in `refused`, when
-- its author has no account ('no_account'), its room does not exist or the author is
-- not a member of it ('not_member'), or the room is archived ('archived'). Membership
-- changes take the same order lock, so a removal either commits before this check
-- (the post is refused) or after this commit (the post precedes the removal in the
-- order every client sees).
DROP FUNCTION chat_store_messages(uuid[], uuid[], text[], text[], bigint, text);

CREATE FUNCTION chat_store_messages(
    client_ids uuid[], owner_ids uuid[], room_ids uuid[], user_names text[], texts text[],
    order_lock_key bigint, notify_channel text
) RETURNS TABLE (
    id bigint, client_id uuid, owner_id uuid, room_id uuid, user_name text, text text,
    created_at timestamptz, created boolean, refused text
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    stored record;
    oldest_new bigint;
    newest_new bigint;
    inserted integer := 0;
    authors uuid[];
    verdicts text[];
BEGIN
    PERFORM pg_advisory_xact_lock(order_lock_key);
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
        END ORDER BY b.position)
    INTO verdicts
    FROM unnest(owner_ids, room_ids) WITH ORDINALITY AS b(owner_id, room_id, position)
    LEFT JOIN rooms r ON r.id = b.room_id;
    FOR stored IN
        INSERT INTO messages AS m (client_id, owner_id, room_id, user_name, text)
        SELECT b.client_id, b.owner_id, b.room_id, b.user_name, b.text
        FROM unnest(client_ids, owner_ids, room_ids, user_names, texts) WITH ORDINALITY
            AS b(client_id, owner_id, room_id, user_name, text, position)
        WHERE verdicts[b.position] IS NULL
        ORDER BY b.position
        ON CONFLICT ON CONSTRAINT messages_owner_client_id_key DO NOTHING
        RETURNING m.id, m.client_id, m.owner_id, m.room_id, m.user_name, m.text, m.created_at
    LOOP
        id := stored.id; client_id := stored.client_id; owner_id := stored.owner_id;
        room_id := stored.room_id; user_name := stored.user_name; text := stored.text;
        created_at := stored.created_at; created := true; refused := NULL;
        RETURN NEXT;
        oldest_new := least(oldest_new, stored.id);
        newest_new := greatest(newest_new, stored.id);
        inserted := inserted + 1;
    END LOOP;
    IF inserted < cardinality(client_ids) THEN
        -- Retries: keys stored before this call. The lock makes every such row's id
        -- smaller than the ids this call assigned.
        RETURN QUERY
            SELECT m.id, m.client_id, m.owner_id, m.room_id, m.user_name, m.text, m.created_at,
                   false, NULL::text
            FROM messages m
            JOIN (SELECT DISTINCT k.owner_id, k.client_id
                  FROM unnest(owner_ids, client_ids) WITH ORDINALITY
                      AS k(owner_id, client_id, position)
                  WHERE verdicts[k.position] IS NULL) k
                ON m.owner_id = k.owner_id AND m.client_id = k.client_id
            WHERE oldest_new IS NULL OR m.id < oldest_new;
        -- Refused rows, with the reason.
        RETURN QUERY
            SELECT DISTINCT NULL::bigint, k.client_id, k.owner_id, k.room_id, NULL::text,
                   NULL::text, NULL::timestamptz, false, verdicts[k.position]
            FROM unnest(owner_ids, client_ids, room_ids) WITH ORDINALITY
                AS k(owner_id, client_id, room_id, position)
            WHERE verdicts[k.position] IS NOT NULL;
    END IF;
    IF notify_channel IS NOT NULL AND newest_new IS NOT NULL THEN
        PERFORM pg_notify(notify_channel, newest_new::text);
    END IF;
END;
$$;
