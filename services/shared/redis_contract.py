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
| `P:rooms:<user>`       | hash             | the API's relay (Lua)      | every gateway |
| `P:room-tails`         | hash             | the API's relay (Lua)      | every gateway |
| `P:memberships`        | string           | the API's relay            | the relay     |
| `P:room-sizes`         | hash             | the API's relay (Lua)      | every gateway |
| `P:online`             | sorted set       | every gateway (Lua)        | gateways, API |
| `P:last-seen`          | sorted set       | every gateway (Lua)        | gateways, API |
| `P:presence`           | pub/sub channel  | every gateway (Lua)        | every gateway |
| `P:typing`             | pub/sub channel  | every gateway              | every gateway |
| `P:reads`              | pub/sub channel  | the API (read markers)     | every gateway |

The manager channel `P` is the python-socketio `AsyncPubSubManager` channel. The
relay describes each committed message with one packet in the format the manager
reads (see `emit_packet`), plus a field `seq = {"id": N, "prev": P}`: N is the
message `_id`, P the `_id` of the message the relay published just before it (0 for
the first). A gateway that receives N with P above the last id it delivered knows it
missed something. Packets without `seq` (a gateway's own emits) are python-socketio's
ordinary traffic.

The relay publishes the packets of one batch in id order as one channel message, a
*batch packet* `{"method": "emit", "host_id": RELAY_HOST_ID, "batch": [packet, ...]}`,
or several once they pass `BATCH_PACKET_BYTES` (`relayed_packets` reads both forms).
Being woken for and parsing a channel message costs a gateway about as much as a few
deliveries, so one per batch instead of one per message is what keeps small rooms
cheap (docs/PERFORMANCE.md).
A gateway also takes a lone packet with `seq`, as relays published before batch
packets existed; a gateway older than batch packets ignores them and catches up from
the history stream by its gap check, so gateways are upgraded before the API.

The relay publishes messages of every room and room events (membership changes and
room updates, services/shared/rooms.py) in one order: each packet also carries
`entry = {"room", "kind", "subject"}` (`kind` "message" or an event kind; `subject` the
member concerned, or null), and `data[0]` is the message's wire object (without its
room) or the event's payload. A global-room message's packet is otherwise exactly the
`getAllmessages` emit it was before rooms existed.

The history stream `P:history` holds one entry per message or room event, with the
explicit id `N-0` and the fields:

* `prev`: P as above. The chain proves a replay has no hole: the first entry after a
  client's `lastId` must have `prev <= lastId`;
* `msg`: the message's wire JSON (without its room), or the event's payload;
* `room`, `kind` and, for events about a member, `user`: as `entry` above (entries
  written before rooms existed have none of them: a global-room message);
* `ts`: the message's commit time in epoch milliseconds. The relay trims entries older
  than `HISTORY_STREAM_MAX_AGE_SECONDS` by it (always keeping the newest entry, the
  anchor that proves "nothing missed"), and a gateway uses it to find what was
  committed since it started.

The stream is also capped by length on every append (`HISTORY_STREAM_MAXLEN`,
approximate). Packet and entry are written together by one Lua script,
`PUBLISH_BATCH`, so they can never disagree, and an id the stream already has is
skipped, so a retried batch is never delivered twice.

`P:rooms:<user>` is the user's room memberships, what a gateway puts a connecting
client in: room id -> the id of the event that added it, and the field `@` -> the id of
the newest membership event applied to the hash (so a gateway can tell which of the
events it is delivering the hash already reflects). The same Lua call that appends a
`joined` or `left` event to the stream updates it, so it is always exactly the
memberships as of the stream's newest entry. `P:room-tails` maps each room to the id
of its newest message or change of a message (edit, deletion, reaction): after a
reconnect that the stream no longer covers, a gateway tells the client which of its
rooms to refetch. `P:memberships` holds the id of the
newest entry the Lua call applied; when it is missing, or behind the batch the relay
publishes (Redis lost data), the call publishes nothing and the relay first rebuilds
every `P:rooms:<user>` from PostgreSQL (relay.py).

`P:room-sizes` maps each room (the global room aside) to its member count: the relay's
Lua call adds one for a `joined` event and takes one away for a `left` event, only
when the subject's membership hash actually changes (so an event applied again after
a rebuild counts once), and the rebuild writes them from PostgreSQL in the same
snapshot as the hashes, with the field `@` marking them complete. Gateways read them to
decide which rooms a presence change is pushed to.

`P:connections:<user>` maps each of the user's live connections (socket id) to its
lease expiry (epoch seconds); gateways admit, renew and release them
(realtime_service/connections.py) to enforce `MAX_CONNECTIONS_PER_USER` across
replicas, and they are what presence is made of (docs/ROOM_STATE.md, "Presence"):

* `P:online` holds the users who are online (a live lease, or their last one released
  less than `OFFLINE_GRACE_SECONDS` ago), each scored by when to look at them again:
  the expiry of their newest lease, or the end of the grace. Its members are the
  online users (the API reads them with ZMSCORE and ZCARD);
* `P:last-seen` scores each user by the last time they were seen connected (epoch
  seconds): when a connection of theirs closed, or the last renewal of leases that
  lapsed;
* `P:presence` carries each change, published by the same Lua call that decides it
  (admission, release, renewal, or the periodic sweep that takes users whose time has
  come offline), as JSON `{"user", "online", "lastSeen", "rooms"}` (`lastSeen`: epoch
  seconds as a string, exactly the score `P:last-seen` holds): `rooms` are the
  user's rooms of at most the gateway's `PRESENCE_PUSH_MAX_MEMBERS` members, whose
  members on each replica receive the `presence` event;
* `P:typing` carries each relayed `typing` event as JSON `{"room", "user": {"id",
  "name"}, "expiresIn"}`, published by the gateway the member typed on; nothing of it
  is stored.

Revocation closes the gap left by tokens verified without a database round trip: a
deleted account's token stays valid by signature until it expires. `P:revoked:<user>`
exists while tokens issued to the user may still be unexpired (its TTL is the longest
lifetime a token may claim); a gateway refuses a connecting user whose mark exists.
`P:revocations` carries the user id; every gateway drops that user's live sockets.
The API writes both before deleting the row, and refuses the deletion (503) while
Redis is unreachable, so a deletion that succeeded was always announced.

`P:reads` carries read markers that moved (services/shared/read_state.py): JSON
`{"user", "room", "lastRead", "receipt"}`, published by the API after the marker's
commit, best effort (the marker is in PostgreSQL either way). Markers are not room
events: they take no id of the message order, and nothing replays them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from services.shared import defaults
from services.shared.messages import NEW_MESSAGE_EVENT
from services.shared.rooms import GLOBAL_ROOM_ID, MESSAGE, MESSAGE_EVENT

# The manager's `host_id` on relay packets: no gateway has it, so every gateway emits them.
RELAY_HOST_ID = "chat-outbox-relay"
REVOKED_MARK = b"1"  # the value of `P:revoked:<user>`; only its existence counts
ROOM_SIZES_COMPLETE = "@"  # the field of `P:room-sizes` the relay's rebuild writes last

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
    def reads_channel(self) -> str:
        """Read markers that moved (services/shared/read_state.py)."""
        return f"{self.prefix}:reads"

    def user_rooms(self, user_id: str) -> str:
        """The user's membership hash: room id -> event id, and `@` -> newest event applied."""
        return f"{self.prefix}:rooms:{user_id}"

    @property
    def user_rooms_pattern(self) -> str:
        """A SCAN pattern matching every membership hash."""
        return f"{_escape(self.prefix)}:rooms:*"

    @property
    def room_tails(self) -> str:
        """Room id -> the id of the room's newest message."""
        return f"{self.prefix}:room-tails"

    @property
    def memberships_applied(self) -> str:
        """The id of the newest entry whose membership change the hashes reflect."""
        return f"{self.prefix}:memberships"

    @property
    def room_sizes(self) -> str:
        """Room id -> member count (the global room has none), and `@` once rebuilt."""
        return f"{self.prefix}:room-sizes"

    @property
    def online(self) -> str:
        """The online users, each scored by when a sweep looks at them again."""
        return f"{self.prefix}:online"

    @property
    def last_seen(self) -> str:
        """User -> the last time they were seen connected (epoch seconds)."""
        return f"{self.prefix}:last-seen"

    @property
    def presence_channel(self) -> str:
        return f"{self.prefix}:presence"

    @property
    def typing_channel(self) -> str:
        return f"{self.prefix}:typing"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key above (to clean up a throw-away prefix)."""
        return f"{_escape(self.prefix)}:*"


def _escape(prefix: str) -> str:
    """`prefix` with the characters SCAN patterns treat specially escaped."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix)


def history_stream_key(keys: RedisKeys | str) -> str:
    """The history stream of a prefix (shorthand for tools and tests)."""
    return RedisKeys.of(keys).history_stream


def revoked_key(keys: RedisKeys | str, user_id: str) -> str:
    """The revocation mark of a user under a prefix (shorthand for tools and tests)."""
    return RedisKeys.of(keys).revoked(user_id)


# --- The manager-channel packet ---------------------------------------------------


@dataclass(frozen=True)
class EntryInfo:
    """Where an entry belongs: its room, its kind, and the member it concerns."""

    room: str = GLOBAL_ROOM_ID
    kind: str = MESSAGE
    subject: str | None = None

    def event_name(self) -> str:
        """The packet's `event` (informational: gateways route by `entry`)."""
        if self.kind != MESSAGE:
            return self.kind
        return NEW_MESSAGE_EVENT if self.room == GLOBAL_ROOM_ID else MESSAGE_EVENT


GLOBAL_MESSAGE = EntryInfo()


def emit_packet(
    wire: dict[str, Any], message_id: int, prev_id: int, entry: EntryInfo = GLOBAL_MESSAGE
) -> bytes:
    """The manager-channel packet of one relayed entry (see the module docstring)."""
    return orjson.dumps(
        {
            "method": "emit",
            "event": entry.event_name(),
            "data": [wire],
            "binary": False,
            "namespace": "/",
            "room": None,
            "skip_sid": None,
            "callback": None,
            "host_id": RELAY_HOST_ID,
            "seq": {"id": message_id, "prev": prev_id},
            "entry": {"room": entry.room, "kind": entry.kind, "subject": entry.subject},
        }
    )


def entry_info_of(packet: dict[str, Any]) -> EntryInfo:
    """The `entry` of a relay packet (a global-room message when it has none)."""
    entry = packet.get("entry")
    if not isinstance(entry, dict):
        return GLOBAL_MESSAGE
    room, kind, subject = entry.get("room"), entry.get("kind"), entry.get("subject")
    return EntryInfo(
        room if isinstance(room, str) else GLOBAL_ROOM_ID,
        kind if isinstance(kind, str) else MESSAGE,
        subject if isinstance(subject, str) else None,
    )


def relayed_packets(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The relay packets a channel message carries, in order; None if not from the relay.

    A batch packet carries them in `batch`; a lone packet with `seq` is one.
    """
    batch = message.get("batch")
    if isinstance(batch, list):
        return [packet for packet in batch if isinstance(packet, dict)]
    return [message] if sequence_of(message) is not None else None


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
    """One message or room event as kept in the history stream."""

    id: int
    prev: int
    wire: dict[str, Any]  # the message's wire object (without room), or the event payload
    info: EntryInfo = GLOBAL_MESSAGE

    @classmethod
    def from_stream(cls, entry_id: Any, fields: Any) -> HistoryEntry:
        """Parse one `(id, fields)` pair as redis-py returns it (bytes)."""
        raw_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        room, kind, subject = fields.get(b"room"), fields.get(b"kind"), fields.get(b"user")
        info = GLOBAL_MESSAGE
        if room is not None or kind is not None:
            info = EntryInfo(
                room.decode() if room is not None else GLOBAL_ROOM_ID,
                kind.decode() if kind is not None else MESSAGE,
                subject.decode() if subject else None,
            )
        return cls(
            id=int(raw_id.split("-", 1)[0]),
            prev=int(fields[b"prev"]),
            wire=orjson.loads(fields[b"msg"]),
            info=info,
        )


def committed_at_ms(fields: dict[bytes, bytes]) -> int:
    """The `ts` field of a history entry (0 for an entry without one)."""
    return int(fields.get(b"ts", b"0"))


def stream_id(message_id: int) -> str:
    """The history stream entry id of a message."""
    return f"{message_id}-0"


# --- The writer: one Lua call per batch ----------------------------------------------

# KEYS[1] stream, KEYS[2] memberships-applied mark; ARGV: channel, maxlen, key prefix,
# then eight per entry in id order: id, prev, payload json, packet, commit time (ms),
# room, kind, subject ('' for none). The packets of the new entries go out as batch
# packets (module docstring) of about BATCH_PACKET_BYTES each. Returns how many were
# new, or -1 (nothing done)
# when the mark is missing or behind the first entry's prev: the membership hashes may
# have lost changes, and the relay rebuilds them before publishing again.
# (The membership hashes, room sizes and room tails are named from the prefix inside the
# script: single-instance Redis, as python-socketio's manager itself needs.)
BATCH_PACKET_HEAD = orjson.dumps(
    {"method": "emit", "host_id": RELAY_HOST_ID, "batch": []}
).decode()[:-2]
BATCH_PACKET_TAIL = "]}"

# A batch packet closes once its packets reach this size and the next one starts: a
# gateway reads and delivers one channel message at a time, so large messages keep
# reaching clients at the pace they are read rather than all in one go.
BATCH_PACKET_BYTES = 64 * 1024

PUBLISH_BATCH = (
    """
local applied = redis.call('GET', KEYS[2])
if not applied or (#ARGV >= 5 and tonumber(applied) < tonumber(ARGV[5])) then
  return -1
end
local last = -1
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      last = tonumber(string.match(info[i + 1], '^(%d+)'))
    end
  end
end
local published, packets, size = 0, {}, 0
local function publish_packets()
  redis.call('PUBLISH', ARGV[1], BATCH_HEAD .. table.concat(packets, ',') .. BATCH_TAIL)
  packets, size = {}, 0
end
local newest = tonumber(applied)
for i = 4, #ARGV, 8 do
  local id = tonumber(ARGV[i])
  local room, kind, subject = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  if id > last then
    if subject == '' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[i] .. '-0', 'prev',
                 ARGV[i + 1], 'msg', ARGV[i + 2], 'ts', ARGV[i + 4], 'room', room, 'kind', kind)
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[i] .. '-0', 'prev',
                 ARGV[i + 1], 'msg', ARGV[i + 2], 'ts', ARGV[i + 4], 'room', room, 'kind', kind,
                 'user', subject)
    end
    packets[#packets + 1] = ARGV[i + 3]
    size = size + #ARGV[i + 3]
    if size >= BATCH_BYTES then
      publish_packets()
    end
    last = id
    published = published + 1
  end
  if id > newest then
    if kind == 'message' or kind == 'edited' or kind == 'deleted' or kind == 'reaction' then
      redis.call('HSET', ARGV[3] .. ':room-tails', room, id)
    elseif kind == 'joined' then
      if redis.call('HEXISTS', ARGV[3] .. ':rooms:' .. subject, room) == 0 then
        redis.call('HINCRBY', ARGV[3] .. ':room-sizes', room, 1)
      end
      redis.call('HSET', ARGV[3] .. ':rooms:' .. subject, room, id, '@', id)
    elseif kind == 'left' then
      if redis.call('HDEL', ARGV[3] .. ':rooms:' .. subject, room) == 1 then
        redis.call('HINCRBY', ARGV[3] .. ':room-sizes', room, -1)
      end
      redis.call('HSET', ARGV[3] .. ':rooms:' .. subject, '@', id)
    end
    newest = id
  end
end
redis.call('SET', KEYS[2], newest)
if #packets > 0 then
  publish_packets()
end
return published
""".replace("BATCH_HEAD", f"[=[{BATCH_PACKET_HEAD}]=]")
    .replace("BATCH_TAIL", f"[=[{BATCH_PACKET_TAIL}]=]")
    .replace("BATCH_BYTES", str(BATCH_PACKET_BYTES))
)


@dataclass(frozen=True)
class Publication:
    """One message or room event as PUBLISH_BATCH takes it."""

    id: int
    prev: int
    wire_json: bytes
    packet: bytes
    commit_ms: int
    info: EntryInfo = GLOBAL_MESSAGE


#: One ARGV value of a Lua script call, as redis-py encodes it.
ScriptArg: TypeAlias = bytes | str | int | float


def publish_batch_keys(keys: RedisKeys) -> list[str]:
    """KEYS for PUBLISH_BATCH."""
    return [keys.history_stream, keys.memberships_applied]


def publish_batch_args(
    keys: RedisKeys, max_len: int, publications: Iterable[Publication]
) -> list[ScriptArg]:
    """ARGV for PUBLISH_BATCH: one script call appends and publishes the whole batch."""
    args: list[ScriptArg] = [keys.manager_channel, max_len, keys.prefix]
    for p in publications:
        info = p.info
        args += [p.id, p.prev, p.wire_json, p.packet, p.commit_ms]
        args += [info.room, info.kind, info.subject or ""]
    return args


# Returned by PUBLISH_BATCH when the membership hashes must be rebuilt first.
MEMBERSHIPS_STALE = -1
