"""`PacketQueue` behaves as the asyncio.Queue python-engineio's sessions were written against."""

from __future__ import annotations

import asyncio

import pytest

from services.realtime_service.packet_queue import PacketQueue

WAIT = 5.0  # bounds a hang; a passing test never waits for it


class Recorder:
    def __init__(self, queue: PacketQueue) -> None:
        self.queue = queue
        self.seen: list[int] = []

    def packet_queued(self) -> None:
        self.seen.append(self.queue.qsize())


async def test_items_come_out_in_order_and_an_empty_queue_holds_no_storage() -> None:
    queue = PacketQueue()
    assert queue.empty() and queue.qsize() == 0 and not queue.full()
    for item in ("a", "b", None):
        queue.put_nowait(item)
    await queue.put("c")
    assert queue.qsize() == 4
    assert [queue.get_nowait() for _ in range(4)] == ["a", "b", None, "c"]
    assert queue._items is None
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_get_waits_for_a_put() -> None:
    queue = PacketQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # wait-ok: one turn lets the getter park
    assert not getter.done()
    queue.put_nowait("x")
    assert await asyncio.wait_for(getter, WAIT) == "x"
    assert queue._getters is None


async def test_a_cancelled_get_passes_its_wake_up_to_the_next_getter() -> None:
    queue = PacketQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # wait-ok: one turn lets both getters park
    queue.put_nowait("only")
    first.cancel()  # woken but cancelled before it took the item
    assert await asyncio.wait_for(second, WAIT) == "only"
    assert first.cancelled()
    assert queue.empty() and queue._getters is None


async def test_a_get_cancelled_while_waiting_leaves_nothing_behind() -> None:
    queue = PacketQueue()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await queue.get()
    assert queue._getters is None
    queue.put_nowait(1)
    assert await asyncio.wait_for(queue.get(), WAIT) == 1


async def test_join_returns_once_every_item_is_done() -> None:
    queue = PacketQueue()
    await asyncio.wait_for(queue.join(), WAIT)  # nothing unfinished
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.ensure_future(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)  # wait-ok: one turn shows the join still waiting
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, WAIT)
    with pytest.raises(ValueError):
        queue.task_done()


async def test_a_cancelled_join_is_forgotten() -> None:
    queue = PacketQueue()
    queue.put_nowait(1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await queue.join()
    assert not queue._joiners


def test_the_listener_hears_each_put_after_the_item_is_in() -> None:
    queue = PacketQueue()
    recorder = Recorder(queue)
    queue.listener = recorder
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert recorder.seen == [1, 2]


def test_it_refuses_a_bound() -> None:
    with pytest.raises(ValueError):
        PacketQueue(10)
