"""Fixtures of the delivery suite: real stacks on private Redis (and PostgreSQL for faults).

* `test_recovery.py` runs against a stack on the shared PostgreSQL (a throw-away database,
  dropped at the end) and a PRIVATE redis-server, because one of its tests drops every
  pub/sub connection of its Redis (`CLIENT KILL TYPE pubsub`), which must never hit the
  machine's shared 6379.
* `test_faults.py` (marker `faults`, `make test-faults`) restarts Redis and PostgreSQL,
  so both are private servers on free ports.

`CHAT_SKIP_FAULTS=1` leaves the fault-injection suite out of a run (it is included by
default; it takes about a minute).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.helpers.delivery import FaultWorld
from tests.helpers.limits import ADMIN_URL
from tests.helpers.processes import PrivatePostgres, PrivateRedis
from tests.helpers.stack import ARTIFACTS, Running, call_maybe_async, running_stack


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault-injection suite against real processes (make test-faults)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CHAT_SKIP_FAULTS", "") not in ("", "0"):
        skip = pytest.mark.skip(reason="CHAT_SKIP_FAULTS is set")
        for item in items:
            if "faults" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
async def recovery_redis() -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis(ARTIFACTS / "delivery-redis")
    await call_maybe_async(redis.start)
    try:
        yield redis
    finally:
        await call_maybe_async(redis.close)


@pytest.fixture(scope="session")
async def recovery_stack(recovery_redis: PrivateRedis) -> AsyncIterator[Running]:
    async with running_stack("recovery", ADMIN_URL, recovery_redis.url) as running:
        yield running


@pytest.fixture(scope="session")
async def short_history_stack(recovery_redis: PrivateRedis) -> AsyncIterator[Running]:
    """A second stack whose relay keeps only ~10 messages of history."""
    async with running_stack(
        "short-history", ADMIN_URL, recovery_redis.url, {"HISTORY_STREAM_MAXLEN": "10"}
    ) as running:
        yield running


@pytest.fixture(scope="session")
async def fault_world() -> AsyncIterator[FaultWorld]:
    log_dir = ARTIFACTS / f"delivery-faults-servers-{uuid.uuid4().hex[:8]}"
    redis = PrivateRedis(log_dir)
    postgres = PrivatePostgres(log_dir)
    try:
        await call_maybe_async(redis.start)
        await call_maybe_async(postgres.init)
        await call_maybe_async(postgres.start)
        # Rate limits off: the writers post in the global room and in three rooms at once.
        no_limits = {"RATE_LIMIT_MESSAGES_PER_MINUTE": "0", "RATE_LIMIT_ROOM_POSTS_PER_MINUTE": "0"}
        async with running_stack("faults", postgres.admin_url, redis.url, no_limits) as running:
            yield FaultWorld(redis, postgres, running)
    finally:
        await call_maybe_async(redis.close)
        await call_maybe_async(postgres.close)
