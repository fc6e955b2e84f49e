"""What both services know about presence and typing (docs/ROOM_STATE.md).

Presence lives in Redis (services/shared/redis_contract.py): the gateways decide every
change, the API reads it for `GET /rooms/{room}/presence`. Times are kept as epoch
seconds and shown as ISO 8601, like a message's `createdAt`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

# Socket.IO events of rooms-aware connections.
PRESENCE_EVENT: Final = "presence"
TYPING_EVENT: Final = "typing"

# How long a client shows "X is typing" after the event, unless it is refreshed.
TYPING_EXPIRES_MS: Final = 6000


def iso_time(seconds: float | None) -> str | None:
    """An epoch time in seconds as ISO 8601 in UTC (None stays None)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
