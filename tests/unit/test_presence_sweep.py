"""The presence sweep runs often, but not while Redis is away.

A sweep every 0.1 s keeps each burst of offline changes small; retried that often
during an outage, it would log a warning ten times a second per replica.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.realtime_service.presence import (
    SWEEP_RETRY_SECONDS,
    PresenceConfig,
    PresenceSweeper,
)
from services.shared.redis_contract import RedisKeys

WAIT = 5.0  # bounds a hang; a passing test never waits for it


class RedisDown:
    """What the sweeper needs of a client, with every script call failing as Redis away."""

    def __init__(self, calls_wanted: int) -> None:
        self.calls: list[float] = []
        self.enough = asyncio.Event()
        self.wanted = calls_wanted

    def register_script(self, _source: str) -> Any:
        async def call(**_kwargs: Any) -> int:
            self.calls.append(asyncio.get_running_loop().time())
            if len(self.calls) >= self.wanted:
                self.enough.set()
            raise ConnectionError("Redis is away")

        return call


async def test_a_failed_sweep_waits_for_the_retry_pause_not_the_sweep_period() -> None:
    redis = RedisDown(calls_wanted=2)
    config = PresenceConfig(sweep_seconds=0.01)
    sweeper = PresenceSweeper(redis, RedisKeys("t"), config, lease_seconds=15)  # type: ignore[arg-type]
    sweeper.start()
    try:
        await asyncio.wait_for(redis.enough.wait(), WAIT)
    finally:
        await sweeper.stop()
    first, second = redis.calls[:2]
    assert second - first >= SWEEP_RETRY_SECONDS * 0.9


def test_the_sweep_runs_ten_times_a_second_by_default() -> None:
    assert PresenceConfig().sweep_seconds == 0.1
