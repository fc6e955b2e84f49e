"""The gateway's manager answers each client's own room without storing it.

The results are the same as python-socketio's.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import socketio

from services.realtime_service.rooms import ImpliedSidRooms


class LeanManager(ImpliedSidRooms, socketio.AsyncManager):  # type: ignore[misc]
    pass


def managed(manager: Any) -> Any:
    ids = (f"sid{i}" for i in itertools.count())
    manager.set_server(
        SimpleNamespace(
            eio=SimpleNamespace(generate_id=lambda: next(ids)), packet_class=socketio.packet.Packet
        )
    )
    return manager


async def scenario(manager: Any) -> list[Any]:
    """Connect, join, leave and disconnect clients; record everything a caller can observe."""
    seen: list[Any] = []
    sids = [await manager.connect(f"eio{i}", "/") for i in range(3)]
    a, b, c = sids
    await manager.enter_room(a, "/", "room")
    await manager.enter_room(b, "/", "room")
    await manager.enter_room(a, "/", a)  # entering one's own room is allowed and changes nothing
    seen.append(sorted(manager.get_participants("/", a)))
    seen.append(sorted(manager.get_participants("/", ["room", c])))
    seen.append(sorted(manager.get_participants("/", None)))
    seen.append(sorted(manager.get_participants("/", "nobody")))
    seen.append(sorted(manager.get_rooms(a, "/"), key=str))
    seen.append(manager.is_sid_room("/", b))
    await manager.leave_room(a, "/", "room")
    seen.append(sorted(manager.get_participants("/", "room")))
    await manager.enter_room(b, "/", "other")
    manager.callbacks[b] = {1: print}  # an ack it was still owed
    manager.pre_disconnect(b, "/")
    manager.pre_disconnect(c, "/")
    await manager.disconnect(b, "/")
    seen.append(sorted(manager.get_participants("/", "other")))
    seen.append((dict(manager.callbacks), dict(manager.pending_disconnect)))
    seen.append(sorted(manager.get_participants("/", b)))
    seen.append(sorted(manager.get_participants("/", "room")))
    seen.append(sorted(manager.get_rooms(b, "/"), key=str))
    seen.append([manager.is_connected(s, "/") for s in sids])
    seen.append(manager.sid_from_eio_sid("eio2", "/"))
    await manager.disconnect(c, "/")
    await manager.disconnect(a, "/")
    seen.append((manager.rooms, dict(manager.pending_disconnect), dict(manager.pending_connect)))
    return seen


async def test_observable_room_state_matches_python_socketio() -> None:
    stock = await scenario(managed(socketio.AsyncManager()))
    lean = await scenario(managed(LeanManager()))
    assert lean == stock


async def test_no_room_is_stored_per_client() -> None:
    manager = managed(LeanManager())
    for i in range(3):
        await manager.connect(f"eio{i}", "/")
    assert list(manager.rooms["/"]) == [None]


async def test_a_client_stays_in_its_own_room_until_it_disconnects() -> None:
    manager = managed(LeanManager())
    sid = await manager.connect("eio0", "/")
    await manager.leave_room(sid, "/", sid)
    assert list(manager.get_participants("/", sid)) == [(sid, "eio0")]
    await manager.disconnect(sid, "/")
    assert list(manager.get_participants("/", sid)) == []
    assert manager.get_rooms(sid, "/") == []
