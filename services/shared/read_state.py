"""Read markers as the API announces them and the gateways pass them on (docs/ROOM_STATE.md).

A read marker is ephemeral state, not a room event: it takes no id of the message
order and is not replayed. After a marker moved (the row is committed in PostgreSQL),
the API publishes a `ReadNotice` on the reads channel (redis_contract.py), those of a
few milliseconds together in one message, a JSON array (`encode_all`); every
gateway sends `readUpdated` to that user's rooms-aware sockets it holds, and, when the
notice is a receipt, a batched `receipts` event to the room's members it holds.
Publishing is best effort: a notice lost while Redis is away leaves the marker in
PostgreSQL, where clients read it over REST.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# Socket.IO events a rooms-aware client receives.
READ_UPDATED_EVENT = "readUpdated"  # {"room", "lastRead"}: to the reader's own sockets
RECEIPTS_EVENT = "receipts"  # {"room", "readers": [{"user", "lastRead"}]}: to the room


@dataclass(frozen=True)
class ReadNotice:
    """`user` has read `room` up to the message `last_read`; `receipt`: others may see it."""

    user: str
    room: str
    last_read: int
    receipt: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "room": self.room,
            "lastRead": str(self.last_read),
            "receipt": self.receipt,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.as_json())

    @staticmethod
    def encode_all(notices: list[ReadNotice]) -> bytes:
        """Several notices as one channel message: a JSON array of them."""
        return orjson.dumps([notice.as_json() for notice in notices])

    @classmethod
    def decode_all(cls, data: bytes | str) -> list[ReadNotice] | None:
        """The notices in a published message (an array, or one notice); None if malformed."""
        try:
            value: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        values = value if isinstance(value, list) else [value]
        notices = [cls.from_json(item) for item in values]
        if not notices or any(notice is None for notice in notices):
            return None
        return [notice for notice in notices if notice is not None]

    @classmethod
    def decode(cls, data: bytes | str) -> ReadNotice | None:
        """The notice in a published message, or None when it is not one."""
        try:
            value: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return cls.from_json(value)

    @classmethod
    def from_json(cls, value: Any) -> ReadNotice | None:
        """The notice a decoded JSON value is, or None."""
        if not isinstance(value, dict):
            return None
        user, room, last_read = value.get("user"), value.get("room"), value.get("lastRead")
        receipt = value.get("receipt")
        if not (
            isinstance(user, str)
            and isinstance(room, str)
            and isinstance(last_read, str)
            and last_read.isascii()
            and last_read.isdigit()
            and isinstance(receipt, bool)
        ):
            return None
        return cls(user, room, int(last_read), receipt)

    def read_updated(self) -> dict[str, str]:
        """The `readUpdated` event's payload."""
        return {"room": self.room, "lastRead": str(self.last_read)}
