"""The presence sweep runs often while users go offline, and rarely when nobody does.

A sweep every 0.1 s keeps each burst of offline changes small; kept up when nobody is
due, it would cost an idle replica more than its pings, and while Redis is away it
would log a warning ten times a second per replica.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.realtime_service.presence import (
    QUIET_SWEEP_SECONDS,
    PresenceConfig,
    PresenceSweeper,
)
from services.shared.redis_contract import RedisKeys

WAIT = 5.0  # bounds a hang; a passing test never waits for it
BUSY_SECONDS = 0.01


class Redis:
    """What the sweeper needs of a client: each sweep finds `due` users, or fails."""

    def __init__(self, due: int | None, calls_wanted: int) -> None:
        self.due = due  # None: Redis is away
        self.calls: list[float] = []
        self.enough = asyncio.Event()
        self.wanted = calls_wanted

    def register_script(self, _source: str) -> Any:
        async def call(**_kwargs: Any) -> int:
            self.calls.append(asyncio.get_running_loop().time())
            if len(self.calls) >= self.wanted:
                self.enough.set()
            if self.due is None:
                raise ConnectionError("Redis is away")
            return self.due

        return call


async def gaps_between_sweeps(redis: Redis) -> list[float]:
    config = PresenceConfig(sweep_seconds=BUSY_SECONDS)
    sweeper = PresenceSweeper(redis, RedisKeys("t"), config, lease_seconds=15)  # type: ignore[arg-type]
    sweeper.start()
    try:
        await asyncio.wait_for(redis.enough.wait(), WAIT)
    finally:
        await sweeper.stop()
    return [b - a for a, b in zip(redis.calls, redis.calls[1:], strict=False)]


async def test_sweeps_follow_each_other_quickly_while_users_are_due() -> None:
    gaps = await gaps_between_sweeps(Redis(due=3, calls_wanted=5))
    assert max(gaps) < QUIET_SWEEP_SECONDS / 2


async def test_a_sweep_that_found_nobody_waits_the_quiet_pause() -> None:
    gaps = await gaps_between_sweeps(Redis(due=0, calls_wanted=2))
    assert gaps[0] >= QUIET_SWEEP_SECONDS * 0.9


async def test_a_failed_sweep_waits_the_quiet_pause_not_the_sweep_period() -> None:
    gaps = await gaps_between_sweeps(Redis(due=None, calls_wanted=2))
    assert gaps[0] >= QUIET_SWEEP_SECONDS * 0.9


def test_the_sweep_runs_ten_times_a_second_by_default() -> None:
    assert PresenceConfig().sweep_seconds == 0.1
