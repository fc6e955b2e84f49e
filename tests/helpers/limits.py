"""Upper bounds of waits and the stack settings the tests assert against.

The timeouts only bound a hang: a passing test never waits for them (no performance
assertions hide in here).
"""

from __future__ import annotations

import os

DELIVERY_TIMEOUT = 15.0
CONNECT_TIMEOUT = 15.0
START_TIMEOUT = 90.0
WAIT = 20.0  # the delivery and launcher suites' bound of a wait on an event

ALLOWED_ORIGIN = os.environ.get("CHAT_ALLOWED_ORIGIN", "http://localhost:3000")
DISALLOWED_ORIGIN = "http://evil.example"
MESSAGE_MAX_CHARS = int(os.environ.get("CHAT_MESSAGE_MAX_CHARS", "4000"))
MAX_BODY_BYTES = int(os.environ.get("CHAT_MAX_BODY_BYTES", "65536"))
HISTORY_DEFAULT_LIMIT = 100
RATE_LIMIT_MESSAGES_PER_MINUTE = int(os.environ.get("CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE", "300"))

# Where test databases are created and dropped, and the shared Redis (private servers aside).
ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# Every per-user rate limit the rooms suites would otherwise hit, off (a stack's env).
RATE_LIMITS_OFF = {
    name: "0"
    for name in (
        "RATE_LIMIT_AUTH_PER_MINUTE",
        "RATE_LIMIT_MESSAGES_PER_MINUTE",
        "RATE_LIMIT_ROOMS_CREATED_PER_MINUTE",
        "RATE_LIMIT_INVITES_PER_MINUTE",
        "RATE_LIMIT_ROOM_POSTS_PER_MINUTE",
        "RATE_LIMIT_READ_MARKERS_PER_MINUTE",
    )
}
