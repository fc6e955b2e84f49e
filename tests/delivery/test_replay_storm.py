"""A reconnect storm with an old `lastId` must not hold live delivery for everyone else.

Many clients reconnect to one gateway at once, each owed a long backlog, while an idle
client of the same gateway waits for a live message. The live message must reach it
while the replays are still going (the gateway's own count of finished recoveries says
so: arrival order across connections at the test's clients proves nothing, the test
process parses the backlogs of all of them), and each replaying client must still get
every missed id once, in order, followed by live ones. The live message is posted while
most of the storm is still connecting, so it also checks that a message delivered
during a `lastId` client's admission waits for its replay instead of arriving ahead of
it and then again inside it.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.rest import fetch_after, new_user, post
from tests.helpers.sockets import RECOVERED, ChatSocket
from tests.helpers.stack import Running

pytestmark = [pytest.mark.security, pytest.mark.timeout(240)]

BACKLOG = 600
STORM = 20
BASELINE_SAMPLES = 5
RECOVERED_TOTAL = re.compile(
    r'^chat_recoveries_total\{recovered="true"\} ([0-9.e+]+)$', re.MULTILINE
)


async def recoveries_done(s: Running, gateway: str) -> int:
    """How many complete recoveries `gateway` has finished, from its /metrics."""
    reply = await s.api.request("GET", "/metrics", base_url=gateway)
    assert reply.status == 200, reply.text
    found = RECOVERED_TOTAL.search(reply.text)
    return int(float(found.group(1))) if found else 0


def stamp_arrivals(client: ChatSocket, event: str, handler: Callable[[Any], Any]) -> list[float]:
    """Arrival times of `event` at `client` (after its own bookkeeping)."""
    times: list[float] = []

    async def on_event(data: Any) -> None:
        await handler(data)
        times.append(time.monotonic())

    client.sio.on(event, on_event)
    return times


async def live_latency(
    s: Running, user: Any, idle: ChatSocket, text: str
) -> tuple[int, float, float]:
    """Post one message; its id, when it was posted and when the idle client got it."""
    posted_at = time.monotonic()
    message_id = await post(s.api, user, text)
    await idle.wait_ids([message_id])
    return message_id, posted_at, time.monotonic()


async def test_live_delivery_is_not_held_behind_a_replay_storm(
    recovery_stack: Running, attack_report: Callable[[str, str], None]
) -> None:
    s = recovery_stack
    gateway = s.gateway_urls[0]
    user, returning = await new_user(s.api), await new_user(s.api)
    idle = ChatSocket("idle", gateway, user, s.api, send_last_id=False, reconnection=False)
    storm = [
        ChatSocket(f"storm{i}", gateway, returning, s.api, reconnection=False) for i in range(STORM)
    ]
    finished = [stamp_arrivals(client, RECOVERED, client._on_recovered) for client in storm]
    connecting: list[asyncio.Task[None]] = []
    try:
        await idle.connect()
        before, _, _ = await live_latency(s, user, idle, "before the backlog")
        for start in range(0, BACKLOG, 25):
            batch = range(start, min(BACKLOG, start + 25))
            await asyncio.gather(*(post(s.api, user, f"backlog {i}") for i in batch))
        baseline = []
        for i in range(BASELINE_SAMPLES):
            _, posted_at, got_at = await live_latency(s, user, idle, f"quiet {i}")
            baseline.append(got_at - posted_at)

        for client in storm:
            client.last_id = before
        done_before = await recoveries_done(s, gateway)
        # The live message goes out once the first of the storm is connected (its replay,
        # and the others', under way), not once all are: this process parses every
        # replay, and waiting for the last connect let a fast gateway finish them all.
        connecting = [asyncio.create_task(client.connect()) for client in storm]
        await asyncio.wait(connecting, return_when=asyncio.FIRST_COMPLETED)
        live_id, posted_at, live_at = await live_latency(s, user, idle, "live during the storm")
        done_when_live = await recoveries_done(s, gateway) - done_before
        await asyncio.gather(*connecting)
        for client in storm:
            await client.wait_recovered()
            await client.wait_ids([live_id])
        replays_done = max(times[0] for times in finished)

        expected = await fetch_after(s.api, user, before)
        assert expected[-1] == live_id and len(expected) == BACKLOG + BASELINE_SAMPLES + 1
        for client in storm:
            (event,) = client.recovered_events
            assert event.recovered, client.summary()
            assert client.socket_ids == expected, f"{client.name}: every id once, in order"
            handed_over = int(event.last_id)
            assert all(i <= handed_over for i in client.socket_ids[: event.at_index])
            assert all(i > handed_over for i in client.socket_ids[event.at_index :]), (
                "recovery, then live"
            )
        assert done_when_live < STORM, (
            "the live message reached the idle client before the replays finished"
        )

        quiet = statistics.median(baseline)
        during = live_at - posted_at
        attack_report(
            "lastId reconnect storm",
            f"live delivery {during * 1000:.0f} ms during {STORM} replays of {BACKLOG} vs "
            f"{quiet * 1000:.0f} ms quiet (x{during / quiet:.1f}); {done_when_live}/{STORM} "
            f"replays done by then, all after {(replays_done - posted_at) * 1000:.0f} ms",
        )
    finally:
        for task in connecting:
            task.cancel()
        await asyncio.gather(*connecting, return_exceptions=True)
        await asyncio.gather(
            idle.close(), *(client.close() for client in storm), return_exceptions=True
        )
