"""Everything the API and the gateways exchange through Redis: keys, channels, fields, scripts.

Every name is derived from one configured prefix, `REDIS_KEY_PREFIX` (default
`chat-socketio`; `SOCKETIO_CHANNEL`, its older name, is still read), by `RedisKeys`.
No other module spells a key or a channel. With the prefix `P`:

| name                   | type             | written by                 | read by       |
|------------------------|------------------|----------------------------|---------------|
| `P`                    | pub/sub channel  | the API's relay (Lua)      | every gateway |
| `P:history`            | stream           | the API's relay (Lua)      | every gateway |
| `P:limits...`          | counters         | the API (rate limits)      | the API       |
| `P:connections:<user>` | sorted set       | every gateway              | every gateway |
| `P:revoked:<user>`     | string, with TTL | the API (account deletion) | every gateway |
| `P:revocations`        | pub/sub channel  | the API (account deletion) | every gateway |

The manager channel `P` is the python-socketio `AsyncPubSubManager` channel. The
relay publishes one packet per committed message on it, in the format the manager
reads (see `emit_packet`), plus a field `seq = {"id": N, "prev": P}`: N is the
message `_id`, P the `_id` of the message the relay published just before it (0 for
the first). A gateway that receives N with P above the last id it delivered knows it
missed something. Packets without `seq` (a gateway's own emits) are python-socketio's
ordinary traffic.

The history stream `P:history` holds one entry per message, with the explicit id
`N-0` and the fields:

* `prev`: P as above. The chain proves a replay has no hole: the first entry after a
  client's `lastId` must have `prev <= lastId`;
* `msg`: the message's wire JSON, what clients receive;
* `ts`: the message's commit time in epoch milliseconds. The relay trims entries older
  than `HISTORY_STREAM_MAX_AGE_SECONDS` by it (always keeping the newest entry, the
  anchor that proves "nothing missed"), and a gateway uses it to find what was
  committed since it started.

The stream is also capped by length on every append (`HISTORY_STREAM_MAXLEN`,
approximate). Packet and entry are written together by one Lua script,
`PUBLISH_BATCH`, so they can never disagree, and an id the stream already has is
skipped, so a retried batch is never delivered twice.

`P:connections:<user>` maps each of the user's live connections (socket id) to its
lease expiry; gateways admit, renew and release them (realtime_service/connections.py)
to enforce `MAX_CONNECTIONS_PER_USER` across replicas.

Revocation closes the gap left by tokens verified without a database round trip: a
deleted account's token stays valid by signature until it expires. `P:revoked:<user>`
exists while tokens issued to the user may still be unexpired (its TTL is the longest
lifetime a token may claim); a gateway refuses a connecting user whose mark exists.
`P:revocations` carries the user id; every gateway drops that user's live sockets.
The API writes both before deleting the row, and refuses the deletion (503) while
Redis is unreachable, so a deletion that succeeded was always announced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from services.shared import defaults
from services.shared.messages import NEW_MESSAGE_EVENT

# The manager's `host_id` on relay packets: no gateway has it, so every gateway emits them.
RELAY_HOST_ID = "chat-outbox-relay"
REVOKED_MARK = b"1"  # the value of `P:revoked:<user>`; only its existence counts

# What redis-py returns for XRANGE/XREVRANGE (its stubs say Optional-everything).
StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


@dataclass(frozen=True)
class RedisKeys:
    """Every Redis key and channel of one deployment, derived from its prefix."""

    prefix: str = defaults.REDIS_KEY_PREFIX

    @classmethod
    def of(cls, keys: RedisKeys | str) -> RedisKeys:
        """`keys` itself, or the keys of the prefix `keys` (what tools and tests hold)."""
        return keys if isinstance(keys, RedisKeys) else cls(keys)

    @property
    def manager_channel(self) -> str:
        """python-socketio's manager channel: the prefix itself."""
        return self.prefix

    @property
    def history_stream(self) -> str:
        return f"{self.prefix}:history"

    @property
    def rate_limit_prefix(self) -> str:
        """The prefix the rate-limit library puts before each of its counters."""
        return f"{self.prefix}:limits"

    def connections(self, user_id: str) -> str:
        return f"{self.prefix}:connections:{user_id}"

    def revoked(self, user_id: str) -> str:
        return f"{self.prefix}:revoked:{user_id}"

    @property
    def revocations_channel(self) -> str:
        return f"{self.prefix}:revocations"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key above (to clean up a throw-away prefix)."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:*"


def history_stream_key(keys: RedisKeys | str) -> str:
    """The history stream of a prefix (shorthand for tools and tests)."""
    return RedisKeys.of(keys).history_stream


def revoked_key(keys: RedisKeys | str, user_id: str) -> str:
    """The revocation mark of a user under a prefix (shorthand for tools and tests)."""
    return RedisKeys.of(keys).revoked(user_id)


# --- The manager-channel packet ---------------------------------------------------


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


# --- The history stream ------------------------------------------------------------


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


def committed_at_ms(fields: dict[bytes, bytes]) -> int:
    """The `ts` field of a history entry (0 for an entry without one)."""
    return int(fields.get(b"ts", b"0"))


def stream_id(message_id: int) -> str:
    """The history stream entry id of a message."""
    return f"{message_id}-0"


# --- The writer: one Lua call per batch ----------------------------------------------

# KEYS[1] stream; ARGV: channel, maxlen, then five per message in id order:
# id, prev, wire json, packet, commit time (ms). Returns how many were new.
PUBLISH_BATCH = """
local last = -1
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      last = tonumber(string.match(info[i + 1], '^(%d+)'))
    end
  end
end
local published = 0
for i = 3, #ARGV, 5 do
  local id = tonumber(ARGV[i])
  if id > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[i] .. '-0',
               'prev', ARGV[i + 1], 'msg', ARGV[i + 2], 'ts', ARGV[i + 4])
    redis.call('PUBLISH', ARGV[1], ARGV[i + 3])
    last = id
    published = published + 1
  end
end
return published
"""


@dataclass(frozen=True)
class Publication:
    """One message as PUBLISH_BATCH takes it."""

    id: int
    prev: int
    wire_json: bytes
    packet: bytes
    commit_ms: int


#: One ARGV value of a Lua script call, as redis-py encodes it.
ScriptArg: TypeAlias = bytes | str | int | float


def publish_batch_args(
    channel: str, max_len: int, publications: Iterable[Publication]
) -> list[ScriptArg]:
    """ARGV for PUBLISH_BATCH: one script call appends and publishes the whole batch."""
    args: list[ScriptArg] = [channel, max_len]
    for p in publications:
        args += [p.id, p.prev, p.wire_json, p.packet, p.commit_ms]
    return args
