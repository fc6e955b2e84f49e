"""The load balancer as the public edge: what it logs, which client address it vouches for,
what it refuses to serve and what it tells about the software behind it.

These tests run on a stack of their own with a small per-address sign-in limit, and go
through HAProxy exactly as a client on the internet would (`CHAT_TEST_HAPROXY_CFG`
swaps the config, e.g. to show that they fail on an older one).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.rest import Api, User, assert_error, rest_session, unique_email
from tests.helpers.sockets import SocketFactory
from tests.helpers.stack import ChatStack, haproxy_override, local_chat_stack

pytestmark = pytest.mark.timeout(120)

AUTH_PER_MINUTE = 10  # the stack's per-address sign-in/sign-up limit
SPOOFED_SIGNINS = 35
VICTIM_ADDRESS = "127.0.0.2"  # another loopback address: a different client to the LB
LOG_WAIT = 10.0


@pytest.fixture(scope="module")
async def lb_stack() -> AsyncIterator[ChatStack]:
    env = {"RATE_LIMIT_AUTH_PER_MINUTE": str(AUTH_PER_MINUTE)}
    async with local_chat_stack("lb", env, **haproxy_override()) as stack:
        yield stack


@pytest.fixture(scope="module")
async def edge_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with rest_session() as session:
        yield session


@pytest.fixture(scope="module")
def direct(edge_http: aiohttp.ClientSession, lb_stack: ChatStack) -> Api:
    """The API on its own port, where the load balancer's X-Forwarded-For is believed."""
    return Api(edge_http, lb_stack.api_url)


@pytest.fixture(scope="module")
def edge(edge_http: aiohttp.ClientSession, lb_stack: ChatStack) -> Api:
    """The API through the load balancer, from 127.0.0.1."""
    return Api(edge_http, lb_stack.lb_url)


@pytest.fixture
async def lb_sockets(lb_stack: ChatStack) -> AsyncIterator[SocketFactory]:
    factory = SocketFactory(lb_stack.lb_url)
    try:
        yield factory
    finally:
        await factory.close_all()


_addresses = iter(range(1, 1 << 16))


async def account(direct: Api) -> User:
    """A signed-in user, created as if by a client the limits have never seen.

    Each account comes from its own documentation-range address (the API trusts the
    load balancer's X-Forwarded-For, and these calls play the load balancer), so making
    test users spends none of 127.0.0.1's sign-in budget.
    """
    n = next(_addresses)
    headers = {"X-Forwarded-For": f"198.18.{n >> 8}.{n & 0xFF}"}
    email, password = unique_email("edge"), f"pw-{uuid.uuid4().hex}"
    up = await direct.request(
        "POST",
        "/signup",
        json={"name": "Edge", "email": email, "password": password},
        headers=headers,
    )
    assert up.status == 201, up.text
    signin = await direct.request(
        "POST", "/signin", json={"email": email, "password": password}, headers=headers
    )
    assert signin.status == 200, signin.text
    body = signin.body
    return User(str(body["userId"]), body["name"], email, password, body["token"])


def log_files(stack: ChatStack) -> list[Path]:
    assert stack.log_dir is not None
    return sorted(p for p in Path(stack.log_dir).rglob("*") if p.is_file())


def socketio_log_lines(stack: ChatStack) -> int:
    assert stack.log_dir is not None
    text = (Path(stack.log_dir) / "haproxy.log").read_text(errors="replace")
    return sum("/socket.io/" in line for line in text.splitlines())


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = LOG_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # wait-ok: polling a log file another process writes


# ---- tokens in logs --------------------------------------------------------------------------


@pytest.mark.security
async def test_a_token_in_the_query_string_reaches_no_log(
    lb_stack: ChatStack,
    direct: Api,
    edge: Api,
    lb_sockets: SocketFactory,
    attack_report: Callable[[str, str], None],
) -> None:
    user = await account(direct)
    logged_before = socketio_log_lines(lb_stack)

    sock = await lb_sockets.connect(user.token, auth_style="query", transports=["polling"])
    assert sock.transport == "polling"
    await lb_sockets.close_all()
    # The REST API behind the same entry point must not log a query token either.
    await edge.request("GET", "/messages", params={"token": user.token, "limit": "1"})

    # HAProxy logs a request when it ends: the handshake, the CONNECT and the polls.
    await wait_until(
        lambda: socketio_log_lines(lb_stack) >= logged_before + 2, "HAProxy's log lines"
    )
    signature = user.token.rsplit(".", 1)[1]
    leaks = {
        path.name: text.count(signature)
        for path in log_files(lb_stack)
        if signature in (text := path.read_text(errors="replace"))
    }
    attack_report(
        "token in query string", f"log files holding the token: {len(leaks)} {leaks or ''}"
    )
    assert not leaks, f"the token was logged in {leaks}"


# ---- X-Forwarded-For ------------------------------------------------------------------------


@pytest.mark.security
async def test_spoofed_forwarded_for_does_not_escape_the_address_limit(
    direct: Api, edge: Api, attack_report: Callable[[str, str], None]
) -> None:
    user = await account(direct)
    statuses = []
    for i in range(SPOOFED_SIGNINS):
        reply = await edge.request(
            "POST",
            "/signin",
            json={"email": user.email, "password": user.password},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
        )
        statuses.append(reply.status)
    refused = statuses.count(429)
    attack_report(
        "X-Forwarded-For spoofing",
        f"{refused} of {SPOOFED_SIGNINS} sign-ins with spoofed addresses got 429 "
        f"(limit {AUTH_PER_MINUTE}/min per address)",
    )
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) <= AUTH_PER_MINUTE, statuses
    assert refused >= SPOOFED_SIGNINS - AUTH_PER_MINUTE, statuses


@pytest.mark.security
async def test_a_victim_named_in_spoofed_headers_is_not_locked_out(
    lb_stack: ChatStack, direct: Api, edge: Api, attack_report: Callable[[str, str], None]
) -> None:
    victim = await account(direct)
    for _ in range(AUTH_PER_MINUTE + 5):
        await edge.request(
            "POST",
            "/signin",
            json={"email": victim.email, "password": "not the password"},
            headers={"X-Forwarded-For": VICTIM_ADDRESS},
        )

    connector = aiohttp.TCPConnector(local_addr=(VICTIM_ADDRESS, 0))
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        reply = await Api(http, lb_stack.lb_url).signin(victim.email, victim.password)
    attack_report(
        "X-Forwarded-For victim lock-out",
        f"victim's own sign-in after {AUTH_PER_MINUTE + 5} spoofed ones: {reply.status}",
    )
    assert reply.status == 200, (reply.status, reply.text)


# ---- what the edge serves and says -----------------------------------------------------------


@pytest.mark.security
@pytest.mark.parametrize("path", ["/metrics", "/metrics?name=x", "/%6detrics", "/%6D%65trics"])
async def test_metrics_are_not_public(lb_stack: ChatStack, edge: Api, path: str) -> None:
    async with edge.http.get(lb_stack.lb_url + path) as resp:
        text = await resp.text()
        assert resp.status == 404, (resp.status, text[:200])
        assert "process_" not in text and "# HELP" not in text
    # Prometheus scrapes each service on its own port: that still works.
    for url in (lb_stack.api_url, *lb_stack.gateway_urls):
        async with edge.http.get(url + "/metrics") as resp:
            assert resp.status == 200, url
            assert "# HELP" in await resp.text()


async def test_refused_metrics_is_a_json_error(edge: Api) -> None:
    assert_error(await edge.request("GET", "/metrics"), 404)


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/", "/openapi.json", "/socket.io/?EIO=4&transport=polling", "/no-such-page"],
)
async def test_no_response_names_the_software_behind_it(
    lb_stack: ChatStack, edge: Api, path: str
) -> None:
    async with edge.http.get(lb_stack.lb_url + path) as resp:
        await resp.read()
        assert "Server" not in resp.headers, resp.headers.get("Server")
        assert "haproxy" not in str(resp.headers).lower()


@pytest.mark.security
async def test_absurd_requests_stop_at_the_load_balancer(lb_stack: ChatStack, edge: Api) -> None:
    long_url = "/messages?" + "a" * 5000
    assert_error(await edge.request("GET", long_url), 414)
    headers = {f"X-Padding-{i}": "x" for i in range(80)}
    assert_error(await edge.request("GET", "/healthz", headers=headers), 431)
    assert (await edge.request("GET", "/healthz")).status == 200
