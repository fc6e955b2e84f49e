"""Background tasks end with their owner, even one that swallows a cancellation."""

from __future__ import annotations

import asyncio

from services.shared.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_still_ended() -> None:
    cancellations = 0

    async def stubborn() -> None:
        nonlocal cancellations
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancellations += 1
                if cancellations > 1:
                    raise  # the reconnect-and-carry-on loop of a library, once

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # wait-ok: one loop turn, so the task starts waiting
    await asyncio.wait_for(cancel_and_wait(task), 3)
    assert task.done() and cancellations == 2


async def test_a_finished_task_and_none_are_fine() -> None:
    await cancel_and_wait(None)
    task = asyncio.create_task(asyncio.sleep(0))  # wait-ok: a task that ends at once
    await task
    await cancel_and_wait(task)
