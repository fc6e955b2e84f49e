"""The gateway side of read notices: markers to the reader at once, receipts batched per room."""

from __future__ import annotations

from typing import Any

from services.realtime_service.reads import ReadNoticeListener, slot_of
from services.shared.read_state import ReadNotice
from services.shared.redis_contract import RedisKeys

ANN, BO, CY = "ann", "bo", "cy"
DIRECT, GROUP, ELSEWHERE = "direct-room", "group-room", "room-nobody-here-is-in"


class Sockets:
    """Records what the listener sends; holds the members of DIRECT and GROUP."""

    def __init__(self) -> None:
        self.to_users: list[tuple[str, str, Any]] = []
        self.to_rooms: list[tuple[str, str, Any]] = []

    def send_to_user(self, user_id: str, event: str, data: Any) -> int:
        self.to_users.append((user_id, event, data))
        return 1

    def holds_room(self, room: str) -> bool:
        return room in (DIRECT, GROUP)

    async def send_to_room(self, room: str, event: str, data: Any) -> int:
        self.to_rooms.append((room, event, data))
        return 2


def listener(sockets: Sockets) -> ReadNoticeListener:
    redis: Any = None  # never subscribed in these tests
    return ReadNoticeListener(redis, RedisKeys("p"), sockets, batch_seconds=1.0)


async def test_a_marker_reaches_the_readers_sockets_at_once() -> None:
    sockets = Sockets()
    reads = listener(sockets)
    reads.deliver(ReadNotice(ANN, DIRECT, 10, receipt=True))
    reads.deliver(ReadNotice(BO, GROUP, 7, receipt=False))
    assert sockets.to_users == [
        (ANN, "readUpdated", {"room": DIRECT, "lastRead": "10"}),
        (BO, "readUpdated", {"room": GROUP, "lastRead": "7"}),
    ]
    assert sockets.to_rooms == []  # receipts wait for the batch


async def test_one_receipts_event_per_room_with_each_readers_furthest_marker() -> None:
    sockets = Sockets()
    reads = listener(sockets)
    for user, room, last in [
        (ANN, DIRECT, 10),
        (ANN, DIRECT, 12),
        (ANN, DIRECT, 11),  # published late: the marker stays at 12
        (BO, GROUP, 5),
        (CY, GROUP, 6),
        (BO, ELSEWHERE, 9),  # nobody here is in that room
    ]:
        reads.deliver(ReadNotice(user, room, last, receipt=True))
    reads.deliver(ReadNotice(CY, DIRECT, 99, receipt=False))  # a marker, no receipt
    await reads.flush()
    assert sorted(sockets.to_rooms, key=lambda sent: sent[0]) == [
        (DIRECT, "receipts", {"room": DIRECT, "readers": [{"user": ANN, "lastRead": "12"}]}),
        (
            GROUP,
            "receipts",
            {
                "room": GROUP,
                "readers": [{"user": BO, "lastRead": "5"}, {"user": CY, "lastRead": "6"}],
            },
        ),
    ]
    await reads.flush()
    assert len(sockets.to_rooms) == 2  # nothing pending: nothing more is sent


async def test_rooms_send_their_receipts_at_their_own_slot_of_the_window() -> None:
    """Receipts of different rooms are spread over the window, not sent in one burst."""
    sockets = Sockets()
    reads = listener(sockets)
    assert slot_of(DIRECT) != slot_of(GROUP)
    reads.deliver(ReadNotice(ANN, DIRECT, 10, receipt=True))
    reads.deliver(ReadNotice(BO, GROUP, 5, receipt=True))
    await reads.flush(slot_of(GROUP))
    assert [room for room, _, _ in sockets.to_rooms] == [GROUP]
    reads.deliver(ReadNotice(CY, GROUP, 6, receipt=True))  # waits for GROUP's next slot
    await reads.flush(slot_of(DIRECT))
    assert [room for room, _, _ in sockets.to_rooms] == [GROUP, DIRECT]
    await reads.flush(slot_of(GROUP))
    assert sockets.to_rooms[-1][2]["readers"] == [{"user": CY, "lastRead": "6"}]
