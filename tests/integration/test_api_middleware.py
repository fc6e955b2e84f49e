"""The API middleware seen from outside: CORS preflights, slow bodies, errors, headers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.limits import ALLOWED_ORIGIN, DISALLOWED_ORIGIN
from tests.helpers.processes import extra_process
from tests.helpers.rest import Api, assert_error, sign_up_and_in
from tests.helpers.stack import ChatStack, require_local

FIXED_ALLOWED_HEADERS = {"authorization", "content-type", "x-request-id"}


def _cors_headers(headers) -> dict[str, str]:
    return {
        name: value for name, value in headers.items() if name.lower().startswith("access-control-")
    }


async def test_a_preflight_is_answered_with_the_fixed_header_list(api: Api) -> None:
    """A browser asking to send any header it likes is told the fixed list only."""
    reply = await api.request(
        "OPTIONS",
        "/messages",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-forwarded-for,x-evil",
        },
    )
    assert reply.status == 204, reply.text
    allowed = {h.strip().lower() for h in reply.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == FIXED_ALLOWED_HEADERS


# DELETE, PATCH and PUT are allowed: `DELETE /users/me`, `PATCH /rooms/{room}` and
# `PUT /rooms/{room}/read` are API routes (see the test above for POST, and the rooms tests).
@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
async def test_a_preflight_for_a_method_not_allowed_is_refused(api: Api, method: str) -> None:
    reply = await api.request(
        "OPTIONS",
        "/messages",
        headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": method},
    )
    assert assert_error(reply, 403)
    assert reply.body["code"] == "cors_forbidden"
    assert _cors_headers(reply.headers) == {}


async def test_a_preflight_from_an_origin_not_allowed_is_refused_without_cors_headers(
    api: Api,
) -> None:
    reply = await api.request(
        "OPTIONS",
        "/messages",
        headers={
            "Origin": DISALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert assert_error(reply, 403)
    assert reply.body["code"] == "cors_forbidden"
    assert _cors_headers(reply.headers) == {}


# ------------------------------------------------------------------------ slow bodies

SLOW_SENDERS = 10
BODY_TIMEOUT_SECONDS = 2
TRICKLE_BYTES = 15  # one a second: the attack gives up after this many


async def _trickle_post(port: int, token: str) -> tuple[bytes, float, int]:
    """POST /messages announcing 200 bytes and sending one a second; (answer, seconds, bytes sent).

    Stops at the first byte of an answer or after TRICKLE_BYTES bytes.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    sent = 0
    try:
        writer.write(
            (
                "POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: 200\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        while sent < TRICKLE_BYTES:
            try:
                first = await asyncio.wait_for(reader.read(1), timeout=1.0)
            except TimeoutError:
                writer.write(b" ")
                await writer.drain()
                sent += 1
                continue
            elapsed = time.perf_counter() - started
            rest = await asyncio.wait_for(reader.read(4096), timeout=5)
            return first + rest, elapsed, sent
        return b"", time.perf_counter() - started, sent
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.security
async def test_a_body_sent_one_byte_a_second_ends_with_408(
    chat_stack: ChatStack, http: aiohttp.ClientSession, attack_report
) -> None:
    env = {"REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS), "DB_POOL_MAX": "2"}
    async with extra_process(chat_stack, "services.api_service", env, "api-slow-body") as url:
        api = Api(http, url)
        attacker, user = await sign_up_and_in(api), await sign_up_and_in(api)
        port = int(url.rsplit(":", 1)[1])
        attack = asyncio.gather(*(_trickle_post(port, attacker.token) for _ in range(SLOW_SENDERS)))
        # Served while every slow body is still arriving (each sends for at least 2 s).
        post = await api.post_message(user, "posted during a slow-body attack")
        health = await api.request("GET", "/healthz")
        served_during_attack = not attack.done()
        answers = await attack

        assert post.status == 201, post.text
        assert health.status == 200
        assert served_during_attack
        for raw, _, _ in answers:
            assert raw.startswith(b"HTTP/1.1 408 "), raw[:200]
            head, _, body = raw.partition(b"\r\n\r\n")
            assert b"Connection: close" in head, head
            assert b'"code":"request_timeout"' in body, body
        seconds = max(elapsed for _, elapsed, _ in answers)
        sent = max(count for _, _, count in answers)
        attack_report(
            "slow request body (1 byte/s)",
            f"{SLOW_SENDERS} trickled POSTs answered 408 after at most {seconds:.1f} s "
            f"({sent} bytes sent, REQUEST_BODY_TIMEOUT_SECONDS={BODY_TIMEOUT_SECONDS}, "
            f"DB_POOL_MAX=2); a normal post got {post.status} "
            f"and /healthz {health.status} meanwhile",
        )
        assert sent < TRICKLE_BYTES


# ------------------------------------------------------------------------ malformed requests

MALFORMED = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: a\r\n" % i for i in range(200))
    + b"\r\n",
    b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
]
MALFORMED_ROUNDS = 40


async def _send_raw(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection; the server's whole answer (it closes after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.security
async def test_malformed_requests_do_not_flood_the_log(
    chat_stack: ChatStack, http: aiohttp.ClientSession, attack_report
) -> None:
    require_local(chat_stack)
    assert chat_stack.log_dir is not None
    async with extra_process(chat_stack, "services.api_service", {}, "api-malformed") as url:
        log_file = Path(chat_stack.log_dir) / "api-malformed.log"
        port = int(url.rsplit(":", 1)[1])
        before = log_file.stat().st_size
        answers = [
            await _send_raw(port, data) for _ in range(MALFORMED_ROUNDS) for data in MALFORMED
        ]
        health = await Api(http, url).request("GET", "/healthz")
        metrics = await Api(http, url).request("GET", "/metrics")
        grown = log_file.stat().st_size - before

        assert all(answer.startswith(b"HTTP/1.") and b" 400 " in answer[:16] for answer in answers)
        assert health.status == 200
        per_request = grown / len(answers)
        attack_report(
            "malformed HTTP requests (huge/too many headers, bad method, bad length, TLS)",
            f"{len(answers)} requests refused with 400, API log grew {grown} bytes "
            f"({per_request:.0f} bytes per request)",
        )
        assert per_request < 50, f"log grew {grown} bytes for {len(answers)} malformed requests"
        # A bad method on a connection's first request (the G@T and TLS ones) is scanner
        # noise aiohttp itself logs at debug only; the three other kinds are counted.
        assert f"chat_http_malformed_requests_total {float(3 * MALFORMED_ROUNDS)}" in metrics.text
