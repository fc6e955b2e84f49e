-- Read state: each user's "read up to" marker per room, and read receipts
-- (docs/ROOM_STATE.md, "Read state").
--
-- A marker is the `_id` of the newest message of the room the user has read; it only
-- moves forward (handlers/reads.py). Markers are ephemeral state, not room events: they
-- take no id of the message order and never the message-order lock, so a room of many
-- readers does not serialize its posts behind them.
CREATE TABLE room_reads (
    user_id    uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    uuid   NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    last_read  bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, room_id)
);
-- A room's readers, furthest first (GET /rooms/{room}/receipts).
CREATE INDEX room_reads_room_idx ON room_reads (room_id, last_read DESC);

-- Group rooms show read receipts when their owner or admins turn them on; direct rooms
-- always do (the column is not read for them).
ALTER TABLE rooms ADD COLUMN receipts boolean NOT NULL DEFAULT false;

-- A user who turns this off keeps their markers; other people no longer see them.
ALTER TABLE users ADD COLUMN send_receipts boolean NOT NULL DEFAULT true;
