-- Accounts and messages.
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL,
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique whatever their case: "Ann@x.io" and "ann@x.io" are one account.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE messages (
    -- Assigned while the writer holds the message-order lock (see db/messages.py), so
    -- ids increase in the order messages become visible to readers.
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id  uuid NOT NULL,
    owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_name  text NOT NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- A retried POST with the same client id from the same user is the same message.
    CONSTRAINT messages_owner_client_id_key UNIQUE (owner_id, client_id)
);
