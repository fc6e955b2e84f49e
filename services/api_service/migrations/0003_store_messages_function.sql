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
    newest_before bigint;
    newest_after bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(order_lock_key);
    SELECT max(m.id) INTO newest_before FROM messages m;
    RETURN QUERY
        WITH wanted AS (
            SELECT * FROM unnest(client_ids, owner_ids, user_names, texts)
                AS w(client_id, owner_id, user_name, text)
        ), inserted AS (
            INSERT INTO messages AS m (client_id, owner_id, user_name, text)
            SELECT w.client_id, w.owner_id, w.user_name, w.text FROM wanted w
            ON CONFLICT ON CONSTRAINT messages_owner_client_id_key DO NOTHING
            RETURNING m.id, m.client_id, m.owner_id, m.user_name, m.text, m.created_at
        )
        SELECT i.id, i.client_id, i.owner_id, i.user_name, i.text, i.created_at, true
        FROM inserted i
        UNION ALL
        -- The statement's snapshot predates its own inserts: these are older rows.
        SELECT m.id, m.client_id, m.owner_id, m.user_name, m.text, m.created_at, false
        FROM messages m
        JOIN (SELECT DISTINCT w.owner_id, w.client_id FROM wanted w) k
            ON m.owner_id = k.owner_id AND m.client_id = k.client_id;
    SELECT max(m.id) INTO newest_after FROM messages m;
    IF notify_channel IS NOT NULL AND newest_after IS DISTINCT FROM newest_before THEN
        PERFORM pg_notify(notify_channel, newest_after::text);
    END IF;
END;
$$;
