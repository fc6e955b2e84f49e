"""The system under test: a stack on the launcher's own `stack.LocalStack`, or an external one.

Every suite starts its stacks with `local_chat_stack`: the API, two gateways and HAProxy
as local processes on free ports, against a throw-away database `chat_<kind>_<hex>`
(dropped at the end) and a Socket.IO Redis channel unique to the run, so concurrent runs
on one PostgreSQL and one Redis never see each other's data. `running_stack` is the same
stack with the REST client the delivery suite drives it with.

Set `CHAT_BASE_URL` to target an already running stack instead (see
`tests/integration/conftest.py` for the variables of that mode).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from stack import REPO_ROOT, LocalStack, StackConfig, infra
from tests.helpers.limits import ADMIN_URL, REDIS_URL
from tests.helpers.rest import Api

ARTIFACTS = REPO_ROOT / "test-artifacts"


@dataclass(frozen=True)
class ChatStack:
    """Where the system under test answers."""

    lb_url: str  # the one public origin (REST + /socket.io/), as the React client uses it
    api_url: str  # the API directly (== lb_url for an external stack without CHAT_API_URL)
    gateway_urls: tuple[str, ...]  # direct gateway URLs; empty when unknown
    jwt_secret: str | None  # known only for a local stack or with CHAT_JWT_SECRET
    external: bool
    log_dir: Path | None = None
    # The services' environment (local stacks only): lets a test start one more
    # process, e.g. an API with tighter limits, against the same database and Redis.
    service_env: dict[str, str] = field(default_factory=dict)
    local: LocalStack | None = None  # the launcher's handle (local stacks only): kill, restart
    database_url: str = ""
    channel: str = ""


def require_local(chat_stack: ChatStack) -> None:
    """Skip unless the stack is this run's own processes.

    For a test that starts more processes, or reads their logs.
    """
    if chat_stack.external:
        pytest.skip(
            "needs the local stack's processes and logs (not an external CHAT_BASE_URL stack)"
        )


def external_stack() -> ChatStack:
    """The stack named by CHAT_BASE_URL (and CHAT_GATEWAY_URLS, CHAT_API_URL, CHAT_JWT_SECRET)."""
    base = os.environ["CHAT_BASE_URL"].rstrip("/")
    gateways = tuple(
        u.strip().rstrip("/")
        for u in os.environ.get("CHAT_GATEWAY_URLS", "").split(",")
        if u.strip()
    )
    return ChatStack(
        lb_url=base,
        api_url=os.environ.get("CHAT_API_URL", base).rstrip("/"),
        gateway_urls=gateways,
        jwt_secret=os.environ.get("CHAT_JWT_SECRET") or None,
        external=True,
    )


async def call_maybe_async(fn: Callable[[], Any]) -> Any:
    """Run a launcher method that may be sync (blocking: off the loop) or a coroutine."""
    if inspect.iscoroutinefunction(fn):
        return await fn()
    return await asyncio.to_thread(fn)


def _with_database(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(admin_url: str, name: str) -> str:
    """Create database `name` on the server of `admin_url` (with the launcher's code); its URL."""
    url = _with_database(admin_url, name)
    await asyncio.to_thread(infra.ensure_database, url)
    return url


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` on the server of `admin_url`, cutting off its sessions."""
    await asyncio.to_thread(infra.drop_database, _with_database(admin_url, name))


@asynccontextmanager
async def local_chat_stack(
    kind: str,
    extra_env: Mapping[str, str] | None = None,
    *,
    admin_url: str = ADMIN_URL,
    redis_url: str = REDIS_URL,
    **config: Any,
) -> AsyncIterator[ChatStack]:
    """The whole topology as local processes on a throwaway database and a private channel.

    `kind` names the database, the Redis channel and the log folder under
    test-artifacts/, so concurrent suites never share state; `config` goes to
    `StackConfig.ephemeral` (e.g. `haproxy_cfg`, `ensure_infra`).
    """
    run_id = uuid.uuid4().hex
    db_name = f"chat_{kind.replace('-', '_')}_{run_id}"
    jwt_secret = f"test-secret-{uuid.uuid4().hex}"
    channel = f"chat-{kind}-{run_id}"
    log_dir = ARTIFACTS / f"{kind}-{run_id[:12]}"
    env = {
        "JWT_SECRET": jwt_secret,
        "SOCKETIO_CHANNEL": channel,
        "APP_ENV": "development",
        "LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    database_url = await create_database(admin_url, db_name)
    try:
        local = LocalStack(
            StackConfig.ephemeral(
                database_url, redis_url, gateways=2, extra_env=env, log_dir=log_dir, **config
            )
        )
        try:
            await call_maybe_async(local.start)
            yield ChatStack(
                lb_url=local.lb_url.rstrip("/"),
                api_url=local.api_url.rstrip("/"),
                gateway_urls=tuple(u.rstrip("/") for u in local.gateway_urls),
                jwt_secret=jwt_secret,
                external=False,
                log_dir=log_dir,
                service_env={"DATABASE_URL": database_url, "REDIS_URL": redis_url, **env},
                local=local,
                database_url=database_url,
                channel=channel,
            )
        finally:
            await call_maybe_async(local.stop)
    finally:
        await drop_database(admin_url, db_name)


@dataclass
class Running:
    """A started local stack and the REST client the delivery tests drive it with."""

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


@asynccontextmanager
async def running_stack(
    name: str, admin_url: str, redis_url: str, extra_env: Mapping[str, str] | None = None
) -> AsyncIterator[Running]:
    """A local stack for the delivery tests: rate limits off, servers given by the caller."""
    limits_off = {
        # These tests post far faster than a person; rate limits are tested elsewhere.
        "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
        "RATE_LIMIT_AUTH_PER_MINUTE": "0",
    }
    async with local_chat_stack(
        f"delivery-{name}",
        {**limits_off, **(extra_env or {})},
        admin_url=admin_url,
        redis_url=redis_url,
        ensure_infra=False,
    ) as stack:
        assert stack.local is not None and stack.log_dir is not None
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
        ) as http:
            yield Running(
                stack.local,
                Api(http, stack.api_url),
                stack.channel,
                stack.log_dir,
                stack.database_url,
            )


def haproxy_override() -> dict[str, Path]:
    """`CHAT_TEST_HAPROXY_CFG` as a `haproxy_cfg` override of the local stack, if set.

    Lets a reviewer prove the affinity test can fail, e.g. with a copy of haproxy.cfg
    that says `balance roundrobin` for the realtime backend.
    """
    cfg = os.environ.get("CHAT_TEST_HAPROXY_CFG")
    return {"haproxy_cfg": Path(cfg).resolve()} if cfg else {}
