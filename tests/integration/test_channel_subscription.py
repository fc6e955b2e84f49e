"""A gateway's own channel subscription lets the rest of the gateway run during a burst.

The presence sweep publishes one message per user it takes offline, all at once. The
subscription reads them from its connection's buffer without waiting on the network,
so without a pause of its own it would hold the event loop until the last one was
handled, and every delivery of messages behind it.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import redis.asyncio as aioredis

from services.realtime_service.subscriptions import ChannelSubscription

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BURST = 300


def work_without_yielding(seconds: float) -> None:
    """What handing a message to its local members costs, without giving the loop back."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def test_other_work_runs_between_the_messages_of_a_burst() -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    channel = f"burst-test-{uuid.uuid4().hex}"
    log: list[str] = []  # "m": a message handled, "t": the other task ran
    burst_handled = asyncio.Event()

    async def on_message(_channel: str, _data: bytes) -> None:
        work_without_yielding(0.0005)
        log.append("m")
        if log.count("m") == BURST:
            burst_handled.set()

    async def other_work() -> None:
        while not burst_handled.is_set():
            log.append("t")
            await asyncio.sleep(0)  # wait-ok: gives the loop back, waits for nothing

    subscription = ChannelSubscription(client, [channel], "burst-test", on_message)
    subscription.start()
    other = asyncio.create_task(other_work())
    try:
        await asyncio.wait_for(subscription.subscribed.wait(), 5)
        async with client.pipeline(transaction=False) as pipe:
            for i in range(BURST):  # one write: the subscriber gets them together
                pipe.publish(channel, f"change {i}")
            await pipe.execute()
        await asyncio.wait_for(burst_handled.wait(), 10)
        first, last = log.index("m"), len(log) - 1 - log[::-1].index("m")
        interleaved = log[first:last].count("t")
        # Without the pause: once per read of the connection (one or a few).
        assert interleaved >= BURST // 20, f"the loop ran {interleaved} times in the burst"
    finally:
        other.cancel()
        await subscription.stop()
        await client.aclose()
