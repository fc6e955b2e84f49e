"""The gateway's fan-out fast path: one encoding, per-client queues, slow consumers dropped.

Fake Engine.IO sockets stand in for connections here: what is under test is the pure
queueing logic. The integration suites cover the same path with real clients.
"""

from __future__ import annotations

import asyncio

import pytest
import socketio

from services.realtime_service.delivery import OrderedRedisManager, event_text
from services.shared.redis_contract import HistoryEntry
from tests.helpers.fake_gateway import FakeSocket, OrjsonPacket, plug, unit_manager


def make_manager(
    clients: int, max_queued: int = 100
) -> tuple[OrderedRedisManager, list[FakeSocket]]:
    manager = unit_manager(max_queued)
    return manager, [plug(manager, f"s{i}", f"e{i}") for i in range(clients)]


async def test_one_encoded_packet_is_queued_for_every_client_in_order() -> None:
    manager, sockets = make_manager(3)
    for message_id in (1, 2, 3):
        await manager._deliver(message_id, {"_id": str(message_id), "text": "é<b>"})
    for sock in sockets:
        frames = [pkt.encode() for pkt in sock.drain()]
        assert frames == [
            '42["getAllmessages",{"_id":"1","text":"é<b>"}]',
            '42["getAllmessages",{"_id":"2","text":"é<b>"}]',
            '42["getAllmessages",{"_id":"3","text":"é<b>"}]',
        ]
    first = sockets[0]
    await manager._deliver(4, {"_id": "4"})
    # The same packet object goes to every client: encoded once per broadcast.
    assert sockets[1].queue.get_nowait() is first.queue.get_nowait()


async def test_recovering_clients_and_clients_ahead_are_skipped() -> None:
    manager, sockets = make_manager(3)
    manager.begin_recovery("s0")
    manager._floors["s1"] = 5
    await manager._deliver(5, {"_id": "5"})
    assert [len(s.drain()) for s in sockets] == [0, 0, 1]
    manager.forget("s0")
    await manager._deliver(6, {"_id": "6"})
    assert [len(s.drain()) for s in sockets] == [1, 1, 1]


async def test_a_client_that_stops_reading_is_disconnected_and_others_keep_receiving() -> None:
    manager, sockets = make_manager(2, max_queued=3)
    stalled, healthy = sockets
    for message_id in range(1, 5):
        await manager._deliver(message_id, {"_id": str(message_id)})
        healthy.drain()
    await asyncio.sleep(0)  # wait-ok: one loop turn runs the close scheduled above
    assert stalled.close_calls == [{"wait": False, "abort": True}]
    assert stalled.drain() == [None]  # backlog dropped, writer told to stop
    await manager._deliver(5, {"_id": "5"})
    assert [p.encode() for p in healthy.drain()] == ['42["getAllmessages",{"_id":"5"}]']
    assert stalled.drain() == []


async def test_duplicates_from_the_relay_are_dropped() -> None:
    manager, sockets = make_manager(1)
    packet = {"method": "emit", "event": "getAllmessages", "namespace": "/", "room": None}
    await manager._handle_emit({**packet, "data": [{"_id": "1"}], "seq": {"id": 1, "prev": 0}})
    await manager._handle_emit({**packet, "data": [{"_id": "1"}], "seq": {"id": 1, "prev": 0}})
    await manager._handle_emit({**packet, "data": [{"_id": "2"}], "seq": {"id": 2, "prev": 1}})
    assert [p.encode() for p in sockets[0].drain()] == [
        '42["getAllmessages",{"_id":"1"}]',
        '42["getAllmessages",{"_id":"2"}]',
    ]


async def test_a_batch_packet_is_delivered_in_order_without_its_duplicates() -> None:
    manager, sockets = make_manager(1)
    packet = {"method": "emit", "event": "getAllmessages", "namespace": "/", "room": None}
    first = {**packet, "data": [{"_id": "1"}], "seq": {"id": 1, "prev": 0}}
    second = {**packet, "data": [{"_id": "2"}], "seq": {"id": 2, "prev": 1}}
    await manager._handle_emit({"method": "emit", "batch": [first]})
    await manager._handle_emit({"method": "emit", "batch": [first, second, "junk"]})
    assert [p.encode() for p in sockets[0].drain()] == [
        '42["getAllmessages",{"_id":"1"}]',
        '42["getAllmessages",{"_id":"2"}]',
    ]


@pytest.mark.parametrize(
    "data", [{"_id": "1", "text": 'é \u2028 "q"'}, [1, 2.5, None, True], "plain", None]
)
def test_event_text_is_what_python_socketio_encodes(data: object) -> None:
    """The direct encoding must stay byte for byte what the packet classes produce."""
    stock = OrjsonPacket(socketio.packet.EVENT, namespace="/", data=["ev", data]).encode()
    assert event_text("ev", data) == "4" + stock


def test_event_text_leaves_bytes_to_python_socketio() -> None:
    assert event_text("ev", {"blob": b"\x00"}) is None


async def test_a_replica_without_clients_tracks_ids_but_encodes_nothing() -> None:
    manager, _ = make_manager(0)
    manager.server.packet_class = None  # type: ignore[attr-defined] - encoding would fail
    await manager._deliver(7, {"_id": "7"})
    assert manager._last_delivered == 7


class StreamLike:
    """The history reader's answers: the stream's newest id, and its entries by range."""

    def __init__(self) -> None:
        self.tail = 0
        self.replayed: list[tuple[int, int]] = []

    async def tail_id(self) -> int:
        return self.tail

    async def replay(self, after: int, upto: int) -> list[HistoryEntry]:
        self.replayed.append((after, upto))
        return [HistoryEntry(i, i - 1, {"_id": str(i)}) for i in range(after + 1, upto + 1)]


async def test_the_gap_check_takes_a_backlog_on_its_way_for_no_gap_but_fills_a_lost_one() -> None:
    manager, sockets = make_manager(1)
    stream = StreamLike()
    manager._history = stream  # type: ignore[assignment]
    manager._last_delivered = 5
    packet = {"method": "emit", "event": "getAllmessages", "namespace": "/", "room": None}

    stream.tail = 9  # 6..9 are in the stream and on their way on the channel
    await manager._check_gap()
    for i in range(6, 10):
        await manager._handle_emit(
            {**packet, "data": [{"_id": str(i)}], "seq": {"id": i, "prev": i - 1}}
        )
    stream.tail = 11  # 10 and 11 are on their way too
    await manager._check_gap()
    assert stream.replayed == []  # a gateway running behind is not a gap

    # 10 and 11 never arrive (published while the subscription was down): filled next round.
    await manager._check_gap()
    assert stream.replayed == [(9, 11)]
    assert [p.encode() for p in sockets[0].drain()][-2:] == [
        '42["getAllmessages",{"_id":"10"}]',
        '42["getAllmessages",{"_id":"11"}]',
    ]
