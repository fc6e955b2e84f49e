"""The live room state load (`--room-state`): presence churn, typing and read markers.

Issue 14 asks what presence, typing and read markers cost the gateways on top of the
rooms load (bench/rooms.py). A `--room-state` run measures, on the same gateways and
the same connected clients, a window of the rooms load alone (the baseline) and then a
window of the same message load with, at the same time:

* presence churn: `churn_per_s` extra users connect and as many disconnect every
  second. They are members of the rooms (churn user j is in room j mod R, its membership
  hash and the room sizes written like the base clients'), so each connect of a user who
  was offline, and each disconnect once `OFFLINE_GRACE_SECONDS` have passed, is a
  presence change the gateways push to the room's members. A churn user stays
  connected `hold_seconds`, then stays away at least `offline_seconds` (longer than the
  grace plus a sweep: a quicker return would publish nothing), so the pool holds
  churn_per_s x (hold + away) users and more (bench/churn.py runs them);
* typing: one member per room (`typist`, spread over the replicas) emits `typing`
  every `typing_period` seconds from its own connection;
* read markers: for every message, one member of its room "reads" it: a notice
  `{user, room, lastRead, receipt}` is published on `<prefix>:reads` right after the
  message, exactly as the API publishes it after its database upsert. Only the
  gateways' side is measured (the API's upsert is not). `receipt` is true in one room in
  `receipt_every` (those stand for the direct rooms and the group rooms whose owner turned
  receipts on); there the gateways batch `receipts` to the members once a second.

The pure pieces (who churns where, who types, who reads, the room sizes, the counters
scraped from the gateways' /metrics) are here; the orchestration is in fanout.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bench.rooms import RoomLayout
from services.shared.read_state import ReadNotice

# The gateways' counters the report takes the difference of around the measured window.
GATEWAY_COUNTERS = (
    "chat_fanout_deliveries_total",
    "chat_presence_changes_total",
    "chat_typing_events_total",
    "chat_room_state_deliveries_total",
    "chat_read_notices_total",
    "chat_receipt_batches_total",
    "chat_refused_connections_total",
    "chat_inbound_refusals_total",
    "chat_slow_consumer_disconnects_total",
)
# What --room-state-split measures one at a time after the pair.
ROOM_STATE_PARTS = ("presence", "typing", "reads")
# The events a rooms-aware client receives besides `message`, counted per window.
STATE_EVENTS = ("presence", "typing", "readUpdated", "receipts")


@dataclass(frozen=True)
class RoomStatePlan:
    """The room-state load of a run over `layout` (its rooms and base clients)."""

    layout: RoomLayout
    churn_per_s: float = 100.0
    hold_seconds: float = 5.0
    offline_seconds: float = 8.0
    typing_period: float = 1.0
    receipt_every: int = 4

    @property
    def churn_pool(self) -> int:
        """Churn users needed: those online (rate x hold) and those waiting to come back,
        with a fifth more so a late disconnect never leaves a connect without a user."""
        if self.churn_per_s <= 0:
            return 0
        return math.ceil(self.churn_per_s * (self.hold_seconds + self.offline_seconds) * 1.2)

    def churn_user_index(self, j: int) -> int:
        """The user index (bench.common.user_id) of churn user j: after the base clients."""
        return self.layout.clients + j

    def churn_room(self, j: int) -> int:
        """The room churn user j is a member of."""
        return j % self.layout.rooms

    def room_sizes(self) -> dict[int, int]:
        """Every room's member count: its base clients plus its churn users."""
        sizes = {r: len(self.layout.members(r)) for r in range(self.layout.rooms)}
        for j in range(self.churn_pool):
            sizes[self.churn_room(j)] += 1
        return sizes

    def typist(self, room: int) -> int:
        """The base client that types in `room`: its (room mod size)-th member.

        Not always the first: with rooms of an even size and clients dealt round-robin
        to two replicas, every room's first member is on the same replica, and all the
        typing would come in there.
        """
        members = self.layout.members(room)
        return members[room % len(members)]

    def reader(self, seq: int) -> int:
        """The base client that reads message `seq`: the room's members take turns."""
        room = self.layout.room_of_seq(seq)
        members = self.layout.members(room)
        return members[((seq - 1) // self.layout.rooms) % len(members)]

    def receipts_on(self, room: int) -> bool:
        return self.receipt_every > 0 and room % self.receipt_every == 0


def read_notice(user: str, room: str, seq: int, receipt: bool) -> ReadNotice:
    """The notice the API publishes on `<prefix>:reads` (services/shared/read_state.py)."""
    return ReadNotice(user, room, seq, receipt)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)\s*$")


def scrape_counters(text: str, names: tuple[str, ...] = GATEWAY_COUNTERS) -> dict[str, float]:
    """The samples of `names` in a Prometheus text page, keyed `name{labels}` (labels as
    written, minus the per-replica `replica` label so replicas add up)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) not in names:
            continue
        labels = match.group(2) or ""
        labels = re.sub(r'(,\s*)?replica="[^"]*"', "", labels).replace("{,", "{")
        key = match.group(1) + ("" if labels in ("", "{}") else labels)
        out[key] = out.get(key, 0.0) + float(match.group(3))
    return out


def scrape_url(url: str, names: tuple[str, ...] = GATEWAY_COUNTERS) -> dict[str, float]:
    """`scrape_counters` of the /metrics page at `url` (raises OSError when unreadable)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return scrape_counters(response.read().decode(), names)


def counter_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """after - before for every sample that moved."""
    deltas = {key: after[key] - before.get(key, 0.0) for key in after}
    return {key: round(value, 1) for key, value in sorted(deltas.items()) if value}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None
