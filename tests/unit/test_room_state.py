"""Presence and typing on one gateway: who gets each event, and what a typist may send.

Fake Engine.IO sockets stand in for connections (as in test_gateway_rooms.py);
tests/integration/test_room_state_socket.py covers the same paths end to end on two
replicas.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from services.realtime_service import typing_indicators
from services.realtime_service.presence import PresenceChange
from services.realtime_service.room_state import RoomStateListener
from services.realtime_service.rooms import Memberships
from services.realtime_service.typing_indicators import TypingRelay
from services.shared.redis_contract import RedisKeys
from services.shared.rooms import GLOBAL_ROOM_ID
from tests.helpers.fake_gateway import FakeSocket, plug, unit_manager

ROOM, OTHER, THIRD = "room-1", "room-2", "room-3"


def events(packets: list[Any]) -> list[tuple[str, Any]]:
    return [tuple(orjson.loads(p.encode()[2:])) for p in packets]


class FakeRedis:
    """Just what TypingRelay uses: its publishing script, with the room sizes it reads."""

    def __init__(self, sizes: dict[str, int] | None = None) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.sizes = sizes or {}

    def register_script(self, _lua: str) -> Any:
        async def publish_small_ones(keys: list[str], args: list[Any]) -> list[int]:
            most, channel, *pairs = args
            verdicts, events = [], []
            for room, data in zip(pairs[0::2], pairs[1::2], strict=True):
                small = not (most > 0 and self.sizes.get(room, 0) > most)
                verdicts.append(int(small))
                events += [orjson.loads(data)] if small else []
            if events:
                self.published.append((channel, orjson.dumps(events)))
            return verdicts

        return publish_small_ones


class Gateway:
    def __init__(self) -> None:
        self.manager = unit_manager()
        self.listener = RoomStateListener(None, RedisKeys("unit"), self.manager)  # type: ignore[arg-type]

    def connect(self, sid: str, user: str | None = None, rooms: tuple[str, ...] = ()) -> FakeSocket:
        """A connection; rooms-aware (in `rooms` and the global room) when it has a user."""
        sock = plug(self.manager, sid, f"e-{sid}")
        if user is not None:
            self.manager.rooms_admission_started(sid, user)
            self.manager.rooms_admitted(sid, user, Memberships(dict.fromkeys(rooms, 1), 1))
        return sock


def change(user: str, online: bool, rooms: list[str]) -> bytes:
    return orjson.dumps({"user": user, "online": online, "lastSeen": 1.5e9, "rooms": rooms})


def test_a_presence_change_reaches_each_connection_sharing_a_listed_room_once() -> None:
    gw = Gateway()
    both = gw.connect("s-both", "bob", (ROOM, OTHER))
    one = gw.connect("s-one", "cat", (OTHER,))
    elsewhere = gw.connect("s-else", "dan", (THIRD,))
    own = gw.connect("s-own", "ann", (ROOM, OTHER))
    legacy = gw.connect("s-legacy")

    assert gw.listener.presence_changed(change("ann", False, [ROOM, OTHER])) == 2
    received = [both.drain(), one.drain()]
    assert [len(packets) for packets in received] == [1, 1], "once, however many rooms shared"
    assert received[0][0] is received[1][0], "encoded once for every recipient"
    assert events(received[0]) == [
        ("presence", {"user": "ann", "online": False, "lastSeen": "2017-07-14T02:40:00.000+00:00"})
    ]
    assert elsewhere.drain() == [] and own.drain() == [] and legacy.drain() == []


def test_a_change_without_small_rooms_sends_nothing_and_a_malformed_one_is_ignored() -> None:
    gw = Gateway()
    peer = gw.connect("s-bob", "bob", (ROOM,))
    # Lua's cjson writes an empty list as an empty object.
    empty = b'{"user": "ann", "online": true, "lastSeen": 1.5e9, "rooms": {}}'
    assert PresenceChange.parse(empty) == PresenceChange("ann", True, 1.5e9, [])
    assert gw.listener.presence_changed(empty) == 0
    assert gw.listener.presence_changed(b"not json") == 0
    assert gw.listener.presence_changed(b'{"online": true}') == 0
    assert peer.drain() == []


def test_typing_reaches_the_room_but_none_of_the_typists_connections() -> None:
    gw = Gateway()
    member = gw.connect("s-bob", "bob", (ROOM,))
    tab1, tab2 = gw.connect("s-ann1", "ann", (ROOM,)), gw.connect("s-ann2", "ann", (ROOM,))
    outsider = gw.connect("s-eve", "eve", (OTHER,))
    event = {"room": ROOM, "user": {"id": "ann", "name": "Ann"}, "expiresIn": 6000}

    assert gw.listener.typing(orjson.dumps(event)) == 1
    assert events(member.drain()) == [("typing", event)]
    assert tab1.drain() == tab2.drain() == outsider.drain() == []
    assert gw.listener.typing(b'{"room": 1}') == 0


async def test_the_typing_relay_checks_membership_and_relays_once_a_second_per_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(typing_indicators, "time", SimpleNamespace(monotonic=lambda: clock.now))
    gw = Gateway()
    gw.connect("s-ann", "ann", (ROOM, OTHER))
    gw.connect("s-legacy")
    redis = FakeRedis()
    relay = TypingRelay(redis, RedisKeys("unit"), gw.manager.rooms_of)  # type: ignore[arg-type]
    relay.connected("s-ann", "ann", "Ann")

    assert await relay.typed("s-ann", {"room": ROOM}) == {"ok": True}
    clock.now += 2.99
    assert await relay.typed("s-ann", {"room": ROOM}) == {"error": "rate_limited"}
    assert await relay.typed("s-ann", {"room": OTHER}) == {"ok": True}
    clock.now += 0.01
    assert await relay.typed("s-ann", {"room": ROOM}) == {"ok": True}
    assert await relay.typed("s-ann", {"room": GLOBAL_ROOM_ID}) == {"error": "room_too_large"}
    assert await relay.typed("s-ann", {"room": THIRD}) == {"error": "not_member"}
    assert await relay.typed("s-legacy", {"room": ROOM}) == {"error": "not_member"}
    assert await relay.typed("s-ann", "room-1") == {"error": "invalid"}
    assert [event["room"] for _, data in redis.published for event in orjson.loads(data)] == [
        ROOM,
        OTHER,
        ROOM,
    ]
    assert {channel for channel, _ in redis.published} == {"unit:typing"}
    relay.forget("s-ann")
    assert await relay.typed("s-ann", {"room": OTHER}) == {"error": "not_member"}


async def test_typing_of_one_linger_goes_out_as_one_message_each_room_checked() -> None:
    gw = Gateway()
    gw.connect("s-ann", "ann", (ROOM, OTHER))
    gw.connect("s-bob", "bob", (ROOM,))
    redis = FakeRedis(sizes={OTHER: 5000})
    relay = TypingRelay(redis, RedisKeys("unit"), gw.manager.rooms_of)  # type: ignore[arg-type]
    relay.connected("s-ann", "ann", "Ann")
    relay.connected("s-bob", "bob", "Bob")

    acks = await asyncio.gather(
        relay.typed("s-ann", {"room": ROOM}),
        relay.typed("s-bob", {"room": ROOM}),
        relay.typed("s-ann", {"room": OTHER}),
    )
    assert acks == [{"ok": True}, {"ok": True}, {"error": "room_too_large"}]
    assert len(redis.published) == 1
    events = orjson.loads(redis.published[0][1])
    assert [(e["room"], e["user"]["id"]) for e in events] == [(ROOM, "ann"), (ROOM, "bob")]
