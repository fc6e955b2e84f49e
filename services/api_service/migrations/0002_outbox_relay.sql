-- The relay's cursor: every message with id <= last_published_id is in Redis.
-- Messages themselves are the outbox: they are committed in id order (see
-- db/messages.py), so "everything after the cursor" is exactly what is unpublished.
CREATE TABLE relay_state (
    name              text PRIMARY KEY,
    last_published_id bigint NOT NULL
);
-- Messages stored before the relay existed were already published directly.
INSERT INTO relay_state (name, last_published_id)
SELECT 'socketio', COALESCE(max(id), 0) FROM messages;
