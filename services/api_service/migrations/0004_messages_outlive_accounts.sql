-- A deleted account's messages stay in the history; posts of a deleted account are refused
-- one by one instead of failing the whole group-committed batch.
--
-- Why the messages stay (see docs/DESIGN.md, "Deleted accounts"): the history is shared,
-- and it has already been published. ON DELETE CASCADE removed rows that every client,
-- the Redis history stream and the relay's `prev` chain had seen, so the REST history
-- and the stream disagreed, and replies lost what they answered. The account's
-- personal data (email, password hash) goes with the users row; the author name in its
-- messages is replaced when the account is deleted (db/users.py).
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_owner_id_fkey;

-- The foreign key also made one message of a deleted account fail the whole batch.
-- Now the insert joins each message to its author's account: messages of an account
-- that does not exist are not inserted and come back as rows with a NULL id, so the
-- caller refuses those requests alone. FOR KEY SHARE makes a concurrent deletion wait
-- for this commit, or this statement wait for the deletion and then skip the author
-- (the same lock the foreign key check took, so a batch costs no more than before).
DROP FUNCTION chat_store_messages(uuid[], uuid[], text[], text[], bigint, text);

CREATE FUNCTION chat_store_messages(
    client_ids uuid[], owner_ids uuid[], user_names text[], texts text[],
    order_lock_key bigint, notify_channel text
) RETURNS TABLE (
    id bigint, client_id uuid, owner_id uuid, user_name text, text text,
    created_at timestamptz, created boolean
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    stored record;
    oldest_new bigint;
    newest_new bigint;
    inserted integer := 0;
    authors uuid[];
BEGIN
    PERFORM pg_advisory_xact_lock(order_lock_key);
    SELECT coalesce(array_agg(u.id), '{}') INTO authors
    FROM (SELECT u.id FROM users u
          WHERE u.id = ANY (owner_ids)
          ORDER BY u.id
          FOR KEY SHARE) u;
    FOR stored IN
        INSERT INTO messages AS m (client_id, owner_id, user_name, text)
        SELECT b.client_id, b.owner_id, b.user_name, b.text
        FROM unnest(client_ids, owner_ids, user_names, texts) WITH ORDINALITY
            AS b(client_id, owner_id, user_name, text, position)
        WHERE b.owner_id = ANY (authors)
        ORDER BY b.position
        ON CONFLICT ON CONSTRAINT messages_owner_client_id_key DO NOTHING
        RETURNING m.id, m.client_id, m.owner_id, m.user_name, m.text, m.created_at
    LOOP
        id := stored.id; client_id := stored.client_id; owner_id := stored.owner_id;
        user_name := stored.user_name; text := stored.text; created_at := stored.created_at;
        created := true;
        RETURN NEXT;
        oldest_new := least(oldest_new, stored.id);
        newest_new := greatest(newest_new, stored.id);
        inserted := inserted + 1;
    END LOOP;
    IF inserted < cardinality(client_ids) THEN
        -- Retries: keys stored before this call. The lock makes every such row's id
        -- smaller than the ids this call assigned.
        RETURN QUERY
            SELECT m.id, m.client_id, m.owner_id, m.user_name, m.text, m.created_at, false
            FROM messages m
            JOIN (SELECT DISTINCT k.owner_id, k.client_id
                  FROM unnest(owner_ids, client_ids) AS k(owner_id, client_id)
                  WHERE k.owner_id = ANY (authors)) k
                ON m.owner_id = k.owner_id AND m.client_id = k.client_id
            WHERE oldest_new IS NULL OR m.id < oldest_new;
        -- Refused: the author has no account (deleted, or never existed).
        RETURN QUERY
            SELECT DISTINCT NULL::bigint, k.client_id, k.owner_id, NULL::text, NULL::text,
                   NULL::timestamptz, false
            FROM unnest(owner_ids, client_ids) AS k(owner_id, client_id)
            WHERE NOT (k.owner_id = ANY (authors));
    END IF;
    IF notify_channel IS NOT NULL AND newest_new IS NOT NULL THEN
        PERFORM pg_notify(notify_channel, newest_new::text);
    END IF;
END;
$$;
