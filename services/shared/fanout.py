"""The Redis contract between the API's relay and the gateways.

Two things carry each committed message, written together by one Lua script so they
can never disagree:

* a packet on the python-socketio manager channel (`SOCKETIO_CHANNEL`), in the format
  `AsyncPubSubManager` reads, plus a `seq` field `{"id": N, "prev": P}`: N is the
  message `_id`, P the `_id` of the message published just before it. A gateway that
  receives N with P above the last id it saw knows it missed something;
* an entry `N-0` in a capped Redis Stream, `<channel>:history`, with fields `prev` and
  `msg` (the wire JSON). Reconnecting clients and gateways that lost their
  subscription replay from it. The `prev` chain proves a replay has no hole: the
  first entry after a client's `lastId` must have `prev <= lastId`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from services.shared.messages import NEW_MESSAGE_EVENT

RELAY_HOST_ID = "chat-outbox-relay"


# What redis-py returns for XRANGE/XREVRANGE (its stubs say Optional-everything).
StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def history_stream_key(channel: str) -> str:
    return f"{channel}:history"


@dataclass(frozen=True)
class HistoryEntry:
    """One message as kept in the history stream."""

    id: int
    prev: int
    wire: dict[str, Any]

    @classmethod
    def from_stream(cls, entry_id: Any, fields: Any) -> HistoryEntry:
        """Parse one `(id, fields)` pair as redis-py returns it (bytes)."""
        raw_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return cls(
            id=int(raw_id.split("-", 1)[0]),
            prev=int(fields[b"prev"]),
            wire=orjson.loads(fields[b"msg"]),
        )


def emit_packet(wire: dict[str, Any], message_id: int, prev_id: int) -> bytes:
    """The manager-channel packet that makes every gateway emit `getAllmessages`."""
    return orjson.dumps(
        {
            "method": "emit",
            "event": NEW_MESSAGE_EVENT,
            "data": [wire],
            "binary": False,
            "namespace": "/",
            "room": None,
            "skip_sid": None,
            "callback": None,
            "host_id": RELAY_HOST_ID,
            "seq": {"id": message_id, "prev": prev_id},
        }
    )


def sequence_of(packet: dict[str, Any]) -> tuple[int, int] | None:
    """(id, prev) of a relay packet, or None for packets from elsewhere."""
    seq = packet.get("seq")
    if not isinstance(seq, dict):
        return None
    message_id, prev = seq.get("id"), seq.get("prev")
    if isinstance(message_id, int) and isinstance(prev, int):
        return message_id, prev
    return None
