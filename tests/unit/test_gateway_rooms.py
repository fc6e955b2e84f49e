"""The gateway's room delivery: who gets which event, and membership applied in order.

Fake Engine.IO sockets stand in for connections (as in test_broadcast.py); what is
under test is the manager's routing. tests/integration/test_rooms_socket.py covers the
same paths end to end with real clients on two replicas.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.realtime_service.rooms import Memberships
from services.shared.redis_contract import EntryInfo, HistoryEntry
from services.shared.rooms import GLOBAL_ROOM_ID
from tests.helpers.fake_gateway import FakeSocket, plug, unit_manager

ROOM = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"


class Gateway:
    """An OrderedRedisManager with fake connections (sid `s<n>`, Engine.IO sid `e<n>`)."""

    def __init__(self) -> None:
        self.manager = unit_manager()
        self.sockets: dict[str, FakeSocket] = {}

    def connect(self, sid: str) -> FakeSocket:
        sock = self.sockets[sid] = plug(self.manager, sid, f"e-{sid}")
        return sock

    def connect_rooms_aware(
        self, sid: str, user: str, rooms: dict[str, int], at: int
    ) -> FakeSocket:
        sock = self.connect(sid)
        self.manager.rooms_admission_started(sid, user)
        self.manager.rooms_admitted(sid, user, Memberships(rooms, at))
        return sock

    async def message(self, entry_id: int, room: str = GLOBAL_ROOM_ID) -> None:
        wire = {"_id": str(entry_id), "text": f"m{entry_id}"}
        await self.manager._deliver(entry_id, wire, EntryInfo(room))

    async def event(self, entry: HistoryEntry) -> None:
        await self.manager._deliver(entry.id, entry.wire, entry.info)


def joined(entry_id: int, user: str, room: str = ROOM) -> HistoryEntry:
    payload = {"room": {"name": "Design"}, "user": {"id": user, "name": user}, "role": "member"}
    return HistoryEntry(entry_id, 0, payload, EntryInfo(room, "joined", user))


def left(entry_id: int, user: str, room: str = ROOM) -> HistoryEntry:
    payload = {"room": room, "reason": "removed", "user": {"id": user, "name": user}}
    return HistoryEntry(entry_id, 0, payload, EntryInfo(room, "left", user))


async def test_a_global_message_is_getallmessages_to_legacy_clients_and_message_to_others() -> None:
    gw = Gateway()
    legacy = gw.connect("s-legacy")
    aware = gw.connect_rooms_aware("s-aware", "ann", {}, 0)
    await gw.message(1)
    assert legacy.events() == [("getAllmessages", {"_id": "1", "text": "m1"})]
    assert aware.events() == [("message", {"_id": "1", "text": "m1", "room": GLOBAL_ROOM_ID})]


async def test_a_room_message_reaches_its_members_only_encoded_once() -> None:
    gw = Gateway()
    legacy = gw.connect("s-legacy")
    members = [gw.connect_rooms_aware(f"s{i}", f"u{i}", {ROOM: 5}, 5) for i in range(3)]
    outsider = gw.connect_rooms_aware("s-out", "out", {OTHER: 5}, 5)
    await gw.message(7, ROOM)
    packets = [m.queue.get_nowait() for m in members]
    assert all(p is packets[0] for p in packets), "one packet object for every member"
    assert orjson.loads(packets[0].encode()[2:]) == [
        "message",
        {"_id": "7", "text": "m7", "room": ROOM},
    ]
    assert legacy.events() == [] and outsider.events() == []


async def test_a_join_puts_every_socket_of_the_user_in_the_room_at_its_place_in_the_order() -> None:
    gw = Gateway()
    phone = gw.connect_rooms_aware("s-phone", "ann", {}, 0)
    laptop = gw.connect_rooms_aware("s-laptop", "ann", {}, 0)
    member = gw.connect_rooms_aware("s-bob", "bob", {ROOM: 3}, 3)
    await gw.message(9, ROOM)  # before the join: not ann's
    await gw.event(joined(10, "ann"))
    await gw.message(11, ROOM)
    for sock in (phone, laptop):
        assert sock.events() == [
            ("roomJoined", {"_id": "10", "room": {"name": "Design", "id": ROOM}}),
            (
                "memberChanged",
                {"_id": "10", "room": ROOM, "user": {"id": "ann", "name": "ann"}, "role": "member"},
            ),
            ("message", {"_id": "11", "text": "m11", "room": ROOM}),
        ]
    assert [name for name, _ in member.events()] == ["message", "memberChanged", "message"]


async def test_after_a_removal_nothing_of_the_room_reaches_the_removed_member() -> None:
    gw = Gateway()
    ann = gw.connect_rooms_aware("s-ann", "ann", {ROOM: 3}, 3)
    bob = gw.connect_rooms_aware("s-bob", "bob", {ROOM: 4}, 4)
    await gw.message(5, ROOM)
    await gw.event(left(6, "ann"))
    await gw.message(7, ROOM)
    assert ann.events() == [
        ("message", {"_id": "5", "text": "m5", "room": ROOM}),
        ("roomLeft", {"_id": "6", "room": ROOM, "reason": "removed"}),
    ]
    assert bob.events()[1:] == [
        (
            "memberChanged",
            {"_id": "6", "room": ROOM, "user": {"id": "ann", "name": "ann"}, "role": None},
        ),
        ("message", {"_id": "7", "text": "m7", "room": ROOM}),
    ]
    await gw.message(8)  # the global room stays
    assert [name for name, _ in ann.events()] == ["message"]


async def test_a_membership_change_during_the_admission_is_applied_after_its_result() -> None:
    gw = Gateway()
    sock = gw.connect("s-new")
    gw.manager.rooms_admission_started("s-new", "ann")
    # Delivered while the admission's round trip is in flight: 12 is newer than the
    # hash it will read (@ = 11), 11 is already in it.
    await gw.event(joined(11, "ann", OTHER))
    await gw.event(left(12, "ann", OTHER))
    await gw.event(joined(13, "ann", ROOM))
    await gw.message(14, ROOM)  # not in any room yet
    gw.manager.rooms_admitted("s-new", "ann", Memberships({OTHER: 11}, 11))
    assert [name for name, _ in sock.events()] == ["roomLeft", "roomJoined"]
    await gw.message(15, ROOM)
    await gw.message(16, OTHER)
    assert sock.events() == [("message", {"_id": "15", "text": "m15", "room": ROOM})]
    assert gw.manager.rooms_of("s-new") == [GLOBAL_ROOM_ID, ROOM]


async def test_replay_sends_what_concerns_the_socket() -> None:
    gw = Gateway()
    legacy = gw.connect("s-legacy")
    aware = gw.connect_rooms_aware("s-aware", "ann", {ROOM: 2, OTHER: 20}, 20)
    entries = [
        HistoryEntry(10, 9, {"_id": "10"}, EntryInfo(GLOBAL_ROOM_ID)),
        HistoryEntry(11, 10, {"_id": "11"}, EntryInfo(ROOM)),
        HistoryEntry(12, 11, {"_id": "12"}, EntryInfo("33333333-3333-3333-3333-333333333333")),
        HistoryEntry(13, 12, {"_id": "13"}, EntryInfo(OTHER)),  # before ann joined OTHER
        joined(20, "ann", OTHER),
        HistoryEntry(21, 20, {"_id": "21"}, EntryInfo(OTHER)),
        joined(22, "bob", "33333333-3333-3333-3333-333333333333"),
    ]
    for entry in entries:
        gw.manager._replay_entry("s-legacy", entry)
        gw.manager._replay_entry("s-aware", entry)
    assert legacy.events() == [("getAllmessages", {"_id": "10"})]
    assert [(name, data["_id"]) for name, data in aware.events()] == [
        ("message", "10"),
        ("message", "11"),
        ("roomJoined", "20"),
        ("memberChanged", "20"),
        ("message", "21"),
    ]


async def test_a_disconnected_socket_is_forgotten_with_its_user_rooms() -> None:
    gw = Gateway()
    gw.connect_rooms_aware("s-ann", "ann", {ROOM: 3}, 3)
    gw.manager.forget("s-ann")
    assert gw.manager.rooms_of("s-ann") is None
    assert gw.manager._users == {} and gw.manager._aware == set()


# ---- changes of messages (docs/ROOM_STATE.md) ---------------------------------------------

CHANGES = [
    (
        "edited",
        "messageEdited",
        {"room": ROOM, "message": {"_id": "7", "text": "new", "edited": "2026-11-28T10:00:00"}},
    ),
    ("deleted", "messageDeleted", {"room": ROOM, "message": "7"}),
    (
        "reaction",
        "reactionsChanged",
        {"room": ROOM, "message": "7", "reactions": [{"emoji": "👍", "count": 1, "users": ["b"]}]},
    ),
]


def change(entry_id: int, kind: str, payload: dict[str, Any], room: str = ROOM) -> HistoryEntry:
    return HistoryEntry(entry_id, 0, payload, EntryInfo(room, kind, None))


async def test_changes_of_a_message_reach_the_rooms_members_in_order_and_nobody_else() -> None:
    gw = Gateway()
    legacy = gw.connect("s-legacy")
    member = gw.connect_rooms_aware("s-bob", "bob", {ROOM: 3}, 3)
    outsider = gw.connect_rooms_aware("s-out", "out", {OTHER: 3}, 3)
    await gw.message(7, ROOM)
    for offset, (kind, _, payload) in enumerate(CHANGES):
        await gw.event(change(8 + offset, kind, payload))
    await gw.message(11, ROOM)
    assert member.events() == [
        ("message", {"_id": "7", "text": "m7", "room": ROOM}),
        *[
            (event, {**payload, "_id": str(8 + offset)})
            for offset, (_, event, payload) in enumerate(CHANGES)
        ],
        ("message", {"_id": "11", "text": "m11", "room": ROOM}),
    ]
    assert legacy.events() == [] and outsider.events() == []


async def test_changes_in_the_global_room_reach_rooms_aware_clients_only() -> None:
    gw = Gateway()
    legacy = gw.connect("s-legacy")
    aware = gw.connect_rooms_aware("s-aware", "ann", {}, 0)
    for offset, (kind, event, payload) in enumerate(CHANGES):
        entry = change(20 + offset, kind, {**payload, "room": GLOBAL_ROOM_ID}, GLOBAL_ROOM_ID)
        await gw.event(entry)
        gw.manager._replay_entry("s-legacy", entry)
        gw.manager._replay_entry("s-aware", entry)
    assert legacy.events() == []
    names = [name for name, _ in aware.events()]
    assert names == [event for _, event, _ in CHANGES for _ in ("live", "replayed")]


async def test_replay_sends_changes_of_the_rooms_the_user_is_in_now() -> None:
    gw = Gateway()
    aware = gw.connect_rooms_aware("s-aware", "ann", {ROOM: 2}, 2)
    kind, event, payload = CHANGES[1]
    gw.manager._replay_entry("s-aware", change(5, kind, payload))
    gw.manager._replay_entry("s-aware", change(6, kind, {**payload, "room": OTHER}, OTHER))
    assert aware.events() == [(event, {**payload, "_id": "5"})]


async def test_a_reply_reaches_legacy_clients_without_its_reply_preview() -> None:
    gw = Gateway()
    legacy = gw.connect("s-legacy")
    aware = gw.connect_rooms_aware("s-aware", "ann", {}, 0)
    preview = {"_id": "3", "owner": "o", "userName": "Bo", "excerpt": "hi"}
    wire = {"_id": "4", "text": "hello", "replyTo": preview}
    await gw.manager._deliver(4, wire, EntryInfo(GLOBAL_ROOM_ID))
    gw.manager._replay_entry("s-legacy", HistoryEntry(4, 3, wire, EntryInfo(GLOBAL_ROOM_ID)))
    assert legacy.events() == [("getAllmessages", {"_id": "4", "text": "hello"})] * 2
    assert aware.events() == [("message", {**wire, "room": GLOBAL_ROOM_ID})]


async def test_a_socket_admitted_without_memberships_leaves_no_room_map_for_the_next() -> None:
    """Two tabs: the one admitted during an outage must not hand its empty rooms to the other."""
    gw = Gateway()
    held = gw.connect("s-held")
    gw.manager.rooms_admission_started("s-held", "ann")
    gw.manager.rooms_unknown("s-held", "ann")
    later = gw.connect_rooms_aware("s-later", "ann", {ROOM: 5}, 5)
    await gw.message(7, ROOM)
    assert later.events() == [("message", {"_id": "7", "text": "m7", "room": ROOM})]
    assert held.events() == []
    assert gw.manager.rooms_of("s-held") is None
