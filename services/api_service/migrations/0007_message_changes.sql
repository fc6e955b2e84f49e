-- Messages that change: edits, deletions, replies and reactions (docs/ROOM_STATE.md).
--
-- An edit rewrites the text in place and sets edited_at; a deletion empties the text
-- and sets deleted_at (the row stays: a tombstone keeps the history's order and ids).
-- Each change is committed with a room event (kind 'edited', 'deleted', 'reaction')
-- that takes the next id of the messages' sequence under the message-order lock, so
-- the relay publishes it in order with the messages and a reconnecting client gets it.
--
-- A reply stores the id of the message it answers and an excerpt of that message's
-- text as it was when the reply was posted. The quoted author (owner, name) is read
-- from the quoted message, so it follows an account deletion like every message does.
ALTER TABLE messages
    ADD COLUMN edited_at timestamptz,
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN reply_to bigint,
    ADD COLUMN reply_excerpt text;
-- Deleting a message empties the excerpts of the replies that quote it.
CREATE INDEX messages_reply_to_idx ON messages (reply_to) WHERE reply_to IS NOT NULL;

-- One row per (message, emoji, person). No foreign key to users: like messages,
-- reactions outlive the account that made them. A deleted message loses its reactions.
CREATE TABLE reactions (
    message_id bigint NOT NULL REFERENCES messages (id),
    emoji      text NOT NULL,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, emoji, user_id)
);

ALTER TABLE room_events DROP CONSTRAINT room_events_kind_check;
ALTER TABLE room_events ADD CONSTRAINT room_events_kind_check
    CHECK (kind IN ('joined', 'left', 'role', 'updated', 'edited', 'deleted', 'reaction'));

-- The plain text of sanitized message HTML, at most `max_chars` characters: tags
-- dropped (those that break a line become a space), the entities nh3 writes decoded,
-- whitespace collapsed. nh3's output escapes every '<' of the text, so a tag is
-- exactly '<' up to the next '>'.
CREATE FUNCTION chat_plain_excerpt(html text, max_chars integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(btrim(regexp_replace(
        replace(replace(replace(replace(replace(replace(
            regexp_replace(
                regexp_replace(html, '<(br|/?(p|li|ul|ol|blockquote|pre))(\s[^>]*)?/?>', ' ', 'gi'),
                '<[^>]*>', '', 'g'),
            '&lt;', '<'), '&gt;', '>'), '&quot;', '"'), '&#39;', ''''), '&nbsp;', ' '),
            '&amp;', '&'),
        '\s+', ' ', 'g')), max_chars)
$$;

-- The reactions of a message as clients see them: per emoji (in the order each was
-- first used) its count and the first `users_shown` people who reacted with it.
CREATE FUNCTION chat_reactions(message bigint, users_shown integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(
               jsonb_build_object('emoji', e.emoji, 'count', e.n, 'users', to_jsonb(e.users))
               ORDER BY e.first, e.emoji), '[]'::jsonb)
    FROM (SELECT r.emoji, count(*) AS n, min(r.created_at) AS first,
                 (array_agg(r.user_id::text ORDER BY r.created_at, r.user_id))[1:users_shown]
                     AS users
          FROM reactions r WHERE r.message_id = message GROUP BY r.emoji) e
$$;

-- Store a batch of posted messages in one round trip (the batch may span rooms).
--
-- As before (0006), plus replies: `reply_tos` holds, per row, the id of the message it
-- answers, or NULL. A reply is refused, with the reason in `refused`, when the quoted
-- message is not one of the same room ('reply_not_found') or was deleted
-- ('reply_deleted'); these are checked under the order lock like membership, so a
-- deletion either commits before (the reply is refused) or after (the reply's excerpt
-- is emptied with the rest). The stored reply carries the quoted message's author and
-- the first 140 characters of its text as plain text. A retry answers the stored
-- message as it is now (edited, or deleted).
DROP FUNCTION chat_store_messages(uuid[], uuid[], uuid[], text[], text[], bigint, text);

CREATE FUNCTION chat_store_messages(
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
        oldest_new := least(oldest_new, stored.id);
        newest_new := greatest(newest_new, stored.id);
        inserted := inserted + 1;
    END LOOP;
    IF inserted < cardinality(client_ids) THEN
        -- Retries: keys stored before this call. The lock makes every such row's id
        -- smaller than the ids this call assigned.
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
            WHERE oldest_new IS NULL OR m.id < oldest_new;
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
