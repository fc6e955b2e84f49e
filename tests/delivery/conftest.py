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

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from stack import LocalStack, StackConfig
from tests.integration.harness import Api, call_maybe_async, create_database, drop_database

from .support import ARTIFACTS, PrivatePostgres, PrivateRedis

SHARED_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


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


@dataclass
class Running:
    """A started LocalStack and what the tests need to reach it."""

    local: LocalStack
    api: Api
    channel: str
    log_dir: Path
    database_url: str

    @property
    def gateway_urls(self) -> tuple[str, ...]:
        return tuple(u.rstrip("/") for u in self.local.gateway_urls)

    @property
    def lb_url(self) -> str:
        return self.local.lb_url.rstrip("/")


@contextlib.asynccontextmanager
async def running_stack(
    name: str, admin_url: str, redis_url: str, extra_env: Mapping[str, str] | None = None
) -> AsyncIterator[Running]:
    """A LocalStack (api, 2 gateways, HAProxy) on a fresh database and a unique channel."""
    run_id = uuid.uuid4().hex
    db_name = f"chat_delivery_{run_id}"
    channel = f"chat-delivery-{run_id}"
    log_dir = ARTIFACTS / f"delivery-{name}-{run_id[:8]}"
    database_url = await create_database(admin_url, db_name)
    try:
        config = StackConfig.ephemeral(
            database_url,
            redis_url,
            extra_env={
                "JWT_SECRET": f"delivery-secret-{uuid.uuid4().hex}",
                "SOCKETIO_CHANNEL": channel,
                "LOG_LEVEL": "INFO",
                "APP_ENV": "development",
                # These tests post far faster than a person; rate limits are tested elsewhere.
                "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
                "RATE_LIMIT_AUTH_PER_MINUTE": "0",
                **(extra_env or {}),
            },
            log_dir=log_dir,
            ensure_infra=False,
        )
        local = LocalStack(config)
        await call_maybe_async(local.start)
        try:
            async with aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
            ) as http:
                yield Running(
                    local, Api(http, local.api_url.rstrip("/")), channel, log_dir, database_url
                )
        finally:
            await call_maybe_async(local.stop)
    finally:
        await drop_database(admin_url, db_name)


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
    async with running_stack("recovery", SHARED_ADMIN_URL, recovery_redis.url) as running:
        yield running


@pytest.fixture(scope="session")
async def short_history_stack(recovery_redis: PrivateRedis) -> AsyncIterator[Running]:
    """A second stack whose relay keeps only ~10 messages of history."""
    async with running_stack(
        "short-history", SHARED_ADMIN_URL, recovery_redis.url, {"HISTORY_STREAM_MAXLEN": "10"}
    ) as running:
        yield running


@dataclass
class FaultWorld:
    """The faults suite's private servers and the stack running on them."""

    redis: PrivateRedis
    postgres: PrivatePostgres
    stack: Running


@pytest.fixture(scope="session")
async def fault_world() -> AsyncIterator[FaultWorld]:
    log_dir = ARTIFACTS / f"delivery-faults-servers-{uuid.uuid4().hex[:8]}"
    redis = PrivateRedis(log_dir)
    postgres = PrivatePostgres(log_dir)
    try:
        await call_maybe_async(redis.start)
        await call_maybe_async(postgres.init)
        await call_maybe_async(postgres.start)
        async with running_stack("faults", postgres.admin_url, redis.url) as running:
            yield FaultWorld(redis, postgres, running)
    finally:
        await call_maybe_async(redis.close)
        await call_maybe_async(postgres.close)
