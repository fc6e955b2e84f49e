"""Bounds that keep one API process responsive under abuse: the hashing queue, history reads.

Each attack runs against one more API process (on the session stack's database and
Redis) started with the settings under test, so the shared stack's limits stay as the
rest of the suite expects.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.helpers.processes import extra_process
from tests.helpers.rest import Api, Reply, assert_error, sign_up_and_in
from tests.helpers.stack import ChatStack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def burst_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client without aiohttp's 100-connection cap, so a burst is really concurrent."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:
        yield session


async def timed(call: asyncio.Future[Reply] | object) -> tuple[Reply, float]:
    started = time.perf_counter()
    reply = await call  # type: ignore[misc]
    return reply, (time.perf_counter() - started) * 1000


@pytest.mark.security
async def test_a_sign_in_burst_beyond_the_hashing_bound_gets_quick_503s(
    chat_stack: ChatStack, burst_http: aiohttp.ClientSession, attack_report
) -> None:
    env = {
        "PASSWORD_HASH_WORKERS": "2",
        "PASSWORD_HASH_MAX_PENDING": "4",
        "RATE_LIMIT_AUTH_PER_MINUTE": "0",  # the per-address limit bypassed, as by many addresses
    }
    async with extra_process(chat_stack, "services.api_service", env, "api-hash-bound") as url:
        api = Api(burst_http, url)
        victim = await sign_up_and_in(api)
        burst = 150
        started = time.perf_counter()
        attack = asyncio.gather(*(api.signin(victim.email, "wrong-password") for _ in range(burst)))
        health, health_ms = await timed(api.request("GET", "/healthz"))
        replies = await attack
        burst_s = time.perf_counter() - started
        real, real_ms = await timed(api.signin(victim.email, victim.password))

        statuses = Counter(reply.status for reply in replies)
        attack_report(
            "sign-in burst vs the hashing queue",
            f"{statuses[503]} of {burst} concurrent sign-ins refused with 503, {statuses[401]} "
            f"hashed (bound 4 pending), burst over in {burst_s:.2f} s; /healthz {health_ms:.0f} "
            f"ms during it; the real user's sign-in after it {real_ms:.0f} ms",
        )
        assert set(statuses) <= {401, 503}, statuses
        assert statuses[503] > 0, f"no sign-in was refused: {statuses}"
        busy = next(reply for reply in replies if reply.status == 503)
        assert_error(busy, 503)
        assert busy.body["code"] == "busy"
        assert int(busy.headers["Retry-After"]) >= 1
        assert health.status == 200
        assert real.status == 200, real.text


# ------------------------------------------------------------------------ web headers

PAGES = [
    "/",
    "/static/app.js",
    "/static/style.css",
    "/docs",
    "/openapi.json",
    "/messages",
    "/no-such-page",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_response_carries_the_browser_protections(api: Api, path: str) -> None:
    reply = await api.request("GET", path)
    headers = reply.headers
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Referrer-Policy") == "no-referrer"
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "aiohttp" not in headers.get("Server", "").lower()
    assert "python" not in headers.get("Server", "").lower()


async def test_the_chat_page_may_run_only_its_own_scripts_and_talk_only_to_its_origin(
    api: Api,
) -> None:
    reply = await api.request("GET", "/")
    assert reply.status == 200
    directives = {
        d.split()[0]: d.split()[1:] for d in reply.headers["Content-Security-Policy"].split(";")
    }
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert "'unsafe-inline'" not in directives.get("style-src", [])


async def test_docs_may_run_only_their_own_scripts_and_talk_only_to_their_origin(api: Api) -> None:
    reply = await api.request("GET", "/docs")
    assert reply.status == 200
    csp = reply.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";")}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert "unsafe" not in csp and "http" not in csp


# ---------------------------------------------------------------------- history reads

HISTORY_ROWS_PER_MINUTE = 5000


@pytest.mark.security
async def test_a_history_read_flood_is_limited_per_user_and_bounded_per_process(
    chat_stack: ChatStack, burst_http: aiohttp.ClientSession, attack_report
) -> None:
    env = {
        "RATE_LIMIT_HISTORY_ROWS_PER_MINUTE": str(HISTORY_ROWS_PER_MINUTE),
        "HISTORY_MAX_CONCURRENT_READS": "2",
        "HISTORY_MAX_WAITING_READS": "16",
        "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
    }
    async with extra_process(chat_stack, "services.api_service", env, "api-history-bound") as url:
        api = Api(burst_http, url)
        reader, bystander = await sign_up_and_in(api), await sign_up_and_in(api)
        for start in range(0, 500, 50):  # at least one full page of history exists
            await asyncio.gather(
                *(
                    api.post_message(reader, f"history {i} " + "x" * 200)
                    for i in range(start, start + 50)
                )
            )

        flood = 200
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(
                api.request("GET", "/messages", token=reader.token, params={"limit": "500"})
                for _ in range(flood)
            )
        )
        flood_s = time.perf_counter() - started
        served = await api.request(
            "GET", "/messages", token=bystander.token, params={"limit": "500"}
        )

        statuses = Counter(reply.status for reply in replies)
        pulled = sum(len(reply.text) for reply in replies if reply.status == 200)
        attack_report(
            "history read flood (200 x limit=500, one user)",
            f"{statuses[200]} served ({pulled / 1e6:.1f} MB), {statuses[429]} refused 429 "
            f"(per-user rows), {statuses[503]} refused 503 (per-process bound) in {flood_s:.2f} s; "
            f"another user's read: {served.status}",
        )
        assert set(statuses) <= {200, 429, 503}, statuses
        assert statuses[200] * 500 <= HISTORY_ROWS_PER_MINUTE * 1.2, (
            statuses
        )  # a minute edge may let a little more
        assert statuses[429] > 0
        limited = next(reply for reply in replies if reply.status == 429)
        assert_error(limited, 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert served.status == 200 and len(served.body) == 500
