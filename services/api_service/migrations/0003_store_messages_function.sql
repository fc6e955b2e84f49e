-- Store a batch of posted messages in one round trip.
--
-- Called as a single statement outside an explicit transaction, so the call is its own
-- transaction: the message-order lock (see db/messages.py) is taken before any id is
-- assigned and held until commit, and the NOTIFY that wakes the relay is sent at that
-- commit (a NULL channel sends none: the writer's own process relays). One network round trip and one WAL flush per batch, the same cost as a bare
-- single-row INSERT in autocommit.
--
-- Returns one row per stored message: the rows this call inserted (created = true) and
-- the rows that already existed for a requested (owner, client id) (created = false).
-- A key repeated inside the batch is inserted once; the caller maps repeats to it.
CREATE OR REPLACE FUNCTION chat_store_messages(
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
BEGIN
    PERFORM pg_advisory_xact_lock(order_lock_key);
    FOR stored IN
        INSERT INTO messages AS m (client_id, owner_id, user_name, text)
        SELECT * FROM unnest(client_ids, owner_ids, user_names, texts)
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
                  FROM unnest(owner_ids, client_ids) AS k(owner_id, client_id)) k
                ON m.owner_id = k.owner_id AND m.client_id = k.client_id
            WHERE oldest_new IS NULL OR m.id < oldest_new;
    END IF;
    IF notify_channel IS NOT NULL AND newest_new IS NOT NULL THEN
        PERFORM pg_notify(notify_channel, newest_new::text);
    END IF;
END;
$$;
