"""Browser tests of the chat page: the real stack, HAProxy, two gateways, real Chromium.

Reuses the integration harness (throw-away database, Socket.IO channel unique to the run,
`LocalStack`), or targets a running stack when `CHAT_BASE_URL` is set.

Both browser contexts run on this machine, so both would reach HAProxy from 127.0.0.1
and `balance source` would send them to the same gateway. To exercise the fan-out
between replicas through the load balancer, each context talks to its own tiny TCP
forwarder that connects to the load balancer from a chosen loopback source address
(any 127.0.0.0/8 address works on Linux); the sources are picked by probing which
replica HAProxy answers from (its `X-Served-By` response header).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.helpers.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CROSS_ORIGINS,
    Forwarder,
    Route,
    chromium_available,
    served_by,
)
from tests.helpers.rest import Api, rest_session
from tests.helpers.stack import ChatStack, external_stack, local_chat_stack


@pytest.fixture(scope="session")
async def web_stack() -> AsyncIterator[ChatStack]:
    """The system under test, started for this session unless CHAT_BASE_URL is set."""
    if os.environ.get("CHAT_BASE_URL"):
        yield external_stack()
        return

    async with local_chat_stack("browser", {"CORS_ORIGINS": CROSS_ORIGINS}) as stack:
        yield stack


@pytest.fixture(scope="session")
async def web_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with rest_session() as session:
        yield session


@pytest.fixture(scope="session")
def web_api(web_http: aiohttp.ClientSession, web_stack: ChatStack) -> Api:
    """REST client through the public entry point (the load balancer)."""
    return Api(web_http, web_stack.lb_url)


@pytest.fixture(scope="session")
async def routes(web_stack: ChatStack) -> AsyncIterator[tuple[Route, Route]]:
    """Two forwarders whose clients the load balancer sends to DIFFERENT gateway replicas."""
    lb = urlsplit(web_stack.lb_url)
    assert lb.hostname and lb.port, web_stack.lb_url
    if lb.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("source-address routing needs a load balancer on this machine's loopback")
    chosen: dict[str, str] = {}  # replica -> source ip
    for last in range(2, 120):
        ip = f"127.0.0.{last}"
        replica = await served_by(web_stack.lb_url, ip)
        assert replica, "the load balancer does not name the replica (X-Served-By header)"
        chosen.setdefault(replica, ip)
        if len(chosen) >= 2:
            break
    assert len(chosen) >= 2, f"every probed source address reached the same replica: {chosen}"
    (replica_a, ip_a), (replica_b, ip_b) = sorted(chosen.items())[:2]
    target = ("127.0.0.1", lb.port)
    fwd_a = await Forwarder(target, ip_a).start()
    fwd_b = await Forwarder(target, ip_b).start()
    try:
        yield Route(fwd_a, replica_a), Route(fwd_b, replica_b)
    finally:
        await fwd_a.close()
        await fwd_b.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium per test module (the modules skip when it is missing)."""
    if not chromium_available():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()
