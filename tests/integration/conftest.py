"""Integration harness: real PostgreSQL, Redis, service processes, HAProxy and Socket.IO clients.

By default one session starts the whole topology as local processes on free ports:
the API, TWO realtime gateways and HAProxy in front of them, against a throw-away
database `chat_test_<hex>` (dropped at the end) and a Socket.IO Redis channel unique to
this run, so concurrent runs on one Redis never see each other's messages.

Set `CHAT_BASE_URL` to target an already running stack instead (e.g. `docker compose
up`): every request then goes to that one public URL. Optional variables for that mode:
`CHAT_GATEWAY_URLS` (comma list of direct gateway URLs; tests that need them are skipped
otherwise), `CHAT_API_URL` (direct API URL, defaults to CHAT_BASE_URL) and
`CHAT_JWT_SECRET` (lets the tests forge expired tokens; skipped otherwise),
`CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE` (the stack's per-user limit; its test is skipped
otherwise). Such a stack must allow hundreds of sign-ups a minute from the test machine
(RATE_LIMIT_AUTH_PER_MINUTE=0 or large) and at least 300 messages per user and minute.

`CHAT_TEST_HAPROXY_CFG` swaps the load balancer config of the local stack (to show that
the affinity tests fail with `balance roundrobin`, for instance).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.helpers.limits import (
    HISTORY_DEFAULT_LIMIT,
    MAX_BODY_BYTES,
    MESSAGE_MAX_CHARS,
    RATE_LIMIT_MESSAGES_PER_MINUTE,
    REDIS_URL,
)
from tests.helpers.rest import Api, User, rest_session, sign_up_and_in
from tests.helpers.sockets import SocketFactory
from tests.helpers.stack import ChatStack, external_stack, haproxy_override, local_chat_stack


@pytest.fixture(scope="session")
async def chat_stack() -> AsyncIterator[ChatStack]:
    """The system under test, started for this session unless CHAT_BASE_URL is set."""
    if os.environ.get("CHAT_BASE_URL"):
        yield external_stack()
        return

    env = {
        "CORS_ORIGINS": "http://localhost:3000,http://127.0.0.1:3000",
        "MESSAGE_MAX_CHARS": str(MESSAGE_MAX_CHARS),
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "HISTORY_DEFAULT_LIMIT": str(HISTORY_DEFAULT_LIMIT),
        "HISTORY_MAX_LIMIT": "500",
        # Hundreds of sign-ups come from 127.0.0.1 during a run; the per-address
        # limit stays on, but far away. The per-user message limit is tested.
        "RATE_LIMIT_AUTH_PER_MINUTE": "100000",
        "RATE_LIMIT_MESSAGES_PER_MINUTE": str(RATE_LIMIT_MESSAGES_PER_MINUTE),
        # Every test client comes from 127.0.0.1: the per-address session cap stays
        # on, but far away (its own test sets it low).
        "MAX_PENDING_SESSIONS_PER_ADDRESS": "5000",
    }
    # haproxy_override lets a reviewer prove the affinity test can fail, e.g. with a copy
    # of haproxy.cfg that says `balance roundrobin` for the realtime backend.
    async with local_chat_stack("test", env, **haproxy_override()) as stack:
        yield stack


@pytest.fixture(scope="session")
def gateway_urls(chat_stack: ChatStack) -> tuple[str, str]:
    """Two direct gateway URLs, or skip (an external stack did not name them)."""
    if len(chat_stack.gateway_urls) < 2:
        pytest.skip("needs two direct gateway URLs (set CHAT_GATEWAY_URLS for an external stack)")
    return chat_stack.gateway_urls[0], chat_stack.gateway_urls[1]


@pytest.fixture(scope="session")
def jwt_secret(chat_stack: ChatStack) -> str:
    """The stack's JWT secret, or skip (set CHAT_JWT_SECRET for an external stack)."""
    if not chat_stack.jwt_secret:
        pytest.skip("needs the stack's JWT secret (set CHAT_JWT_SECRET for an external stack)")
    return chat_stack.jwt_secret


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP client session for REST calls (no cookies: the React client sends none)."""
    async with rest_session() as session:
        yield session


@pytest.fixture(scope="session")
def api(http: aiohttp.ClientSession, chat_stack: ChatStack) -> Api:
    return Api(http, chat_stack.api_url)


@pytest.fixture(scope="session")
def lb_api(http: aiohttp.ClientSession, chat_stack: ChatStack) -> Api:
    """The same REST client through the public entry point (the load balancer)."""
    return Api(http, chat_stack.lb_url)


@pytest.fixture
def new_user(api: Api) -> Callable[..., Awaitable[User]]:
    """Factory: sign up and sign in a fresh user (unique email per call)."""

    async def make(name: str | None = None) -> User:
        return await sign_up_and_in(api, name)

    return make


@pytest.fixture
async def sockets(chat_stack: ChatStack) -> AsyncIterator[SocketFactory]:
    """Factory of Socket.IO clients (default: through the load balancer); all closed at teardown."""
    factory = SocketFactory(chat_stack.lb_url)
    try:
        yield factory
    finally:
        await factory.close_all()


@pytest.fixture(scope="session")
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    """A client of the machine's Redis, for tests that read what the services keep there."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()
