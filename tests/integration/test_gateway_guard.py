"""What one client can make a gateway hold or do.

Binary floods, idle sessions, bad frames and event floods. Each attack runs against a
gateway process of its own (so its memory, log and metrics are the attack's alone),
bounded in count and time, on 127.0.0.1, and reports its figure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time

import aiohttp
import pytest

from tests.helpers.limits import CONNECT_TIMEOUT
from tests.helpers.metrics import metric_value
from tests.helpers.processes import Gateway, gateway_process, polling_handshake
from tests.helpers.rest import User
from tests.helpers.sockets import open_raw_session, wait_closed
from tests.helpers.stack import ChatStack, require_local

pytestmark = pytest.mark.security

MB = 1024 * 1024
BINARY_FRAME = b"\0" * 60_000
BINARY_FRAMES = 300  # 18 MB if the gateway kept them
POLICY_VIOLATION = 1008


@pytest.fixture(autouse=True)
def local_only(chat_stack: ChatStack) -> None:
    require_local(chat_stack)


async def flood_binary(
    ws: aiohttp.ClientWebSocketResponse, frames: int
) -> tuple[int, aiohttp.WSMessage]:
    """Send up to `frames` 60 KB binary frames until the server closes; (frames sent, the close)."""
    closing = asyncio.ensure_future(wait_closed(ws))
    sent = 0
    for _ in range(frames):
        if closing.done():
            break
        try:
            await ws.send_bytes(BINARY_FRAME)
        except (ConnectionError, RuntimeError):
            break
        sent += 1
        await asyncio.sleep(0)  # wait-ok: a yield to the loop so the close can be read
    return sent, await closing


async def test_binary_attachments_are_refused_and_memory_stays_flat(
    chat_stack: ChatStack, new_user, http: aiohttp.ClientSession, attack_report
) -> None:
    user: User = await new_user()
    async with gateway_process(chat_stack, "rt-binary", {}) as gateway:
        baseline = await open_raw_session(http, gateway.url, user.token)  # warms the gateway up
        await baseline.close()
        before = gateway.rss_bytes()
        ws = await open_raw_session(http, gateway.url, user.token)
        await ws.send_str('451000000-["x",{"_placeholder":true,"num":0}]')
        sent, closed = await flood_binary(ws, BINARY_FRAMES)
        grown = gateway.rss_bytes() - before

        # A bare binary frame (no announcing event) is refused as well.
        bare = await open_raw_session(http, gateway.url, user.token)
        await bare.send_bytes(b"\x01\x02")
        bare_closed = await wait_closed(bare)
        refused = await metric_value(http, gateway, 'chat_inbound_refusals_total{reason="binary"}')
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == POLICY_VIOLATION, closed
    assert bare_closed.type == aiohttp.WSMsgType.CLOSE and bare_closed.data == POLICY_VIOLATION
    assert refused >= 2
    assert grown < 8 * MB, f"gateway grew {grown / MB:.1f} MB"
    attack_report(
        "binary flood (WebSocket)",
        f"gateway RSS {grown / MB:+.1f} MB after {sent} x 60 KB frames sent (limit 8 MB), "
        "connection closed 1008",
    )


async def test_binary_events_over_long_polling_are_refused(
    chat_stack: ChatStack, new_user, http: aiohttp.ClientSession, attack_report
) -> None:
    user: User = await new_user()
    async with gateway_process(chat_stack, "rt-binary-polling", {}) as gateway:
        for body in (
            '451-["x",{"_placeholder":true,"num":0}]',
            "b" + base64.b64encode(b"\x01\x02").decode(),
        ):
            sid = await polling_handshake(http, gateway)
            url = f"{gateway.polling_url}&sid={sid}"
            async with http.post(url, data="40" + json.dumps({"token": user.token})) as reply:
                assert reply.status == 200
            async with http.get(url) as reply:
                assert (await reply.text()).startswith("40")
            async with http.post(url, data=body) as reply:
                refused_status = reply.status
            async with http.get(url) as reply:
                later_status = reply.status
            assert refused_status == 400, body
            assert later_status == 400, body
    attack_report("binary event (long-polling)", "POST answered 400, session closed")


async def test_sessions_that_never_connect_are_closed_and_capped_per_address(
    chat_stack: ChatStack, http: aiohttp.ClientSession, attack_report
) -> None:
    env = {"CONNECT_TIMEOUT_SECONDS": "1", "MAX_PENDING_SESSIONS_PER_ADDRESS": "20"}
    async with gateway_process(chat_stack, "rt-idle", env) as gateway:
        held = [await http.ws_connect(gateway.ws_url) for _ in range(20)]
        for ws in held:
            assert (await ws.receive_str(timeout=CONNECT_TIMEOUT)).startswith("0")
        async with http.get(gateway.polling_url) as over_cap:
            over_cap_status = over_cap.status
            over_cap_body = await over_cap.json(content_type=None)
        # Another client behind the trusted load balancer has its own allowance.
        other = await polling_handshake(http, gateway, **{"X-Forwarded-For": "198.51.100.7"})
        other_poll_reply = asyncio.ensure_future(
            poll_once(http, f"{gateway.polling_url}&sid={other}")
        )
        # None of them sends a namespace CONNECT: each is closed by the gateway.
        closes = await asyncio.gather(*(wait_closed(ws) for ws in held))
        alive = sum(1 for ws in held if not ws.closed)
        other_poll = await asyncio.wait_for(other_poll_reply, CONNECT_TIMEOUT)
        again = await polling_handshake(http, gateway)  # the address's sessions were released
        timed_out = await metric_value(
            http, gateway, 'chat_inbound_refusals_total{reason="connect_timeout"}'
        )
    assert over_cap_status == 429, over_cap_body
    assert over_cap_body["code"] == "too_many_sessions"
    assert all(close.type == aiohttp.WSMsgType.CLOSE for close in closes)
    assert alive == 0
    assert other_poll == (200, "1"), other_poll  # the polling session gets a CLOSE packet
    assert again
    assert timed_out >= 21
    attack_report(
        "unauthenticated sessions",
        f"{alive} of 20 alive after the 1 s connect deadline; 21st from one address refused 429",
    )


async def test_signed_in_sessions_do_not_count_against_the_address_cap(
    chat_stack: ChatStack, new_user, http: aiohttp.ClientSession
) -> None:
    """Many users behind one NAT share an address: only sessions not yet signed in are capped."""
    env = {"MAX_PENDING_SESSIONS_PER_ADDRESS": "2"}
    async with gateway_process(chat_stack, "rt-nat", env) as gateway:
        users: list[User] = [await new_user() for _ in range(4)]
        signed_in = []
        for user in users:
            ws = await http.ws_connect(gateway.ws_url)
            assert (await ws.receive_str(timeout=CONNECT_TIMEOUT)).startswith("0")
            await ws.send_str("40" + json.dumps({"token": user.token}))
            assert (await ws.receive_str(timeout=CONNECT_TIMEOUT)).startswith("40{")
            signed_in.append(ws)
        pending = [await http.ws_connect(gateway.ws_url) for _ in range(2)]
        async with http.get(gateway.polling_url) as over_cap:
            over_cap_status = over_cap.status
        for ws in [*signed_in, *pending]:
            await ws.close()
    assert over_cap_status == 429  # 4 signed in + 2 pending: only the pending ones count


async def poll_once(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as reply:
        return reply.status, await reply.text()


MALFORMED_FRAMES = [
    "4garbage",
    "42[",
    "9",
    "x",
    "0",
    "4" + "[" * 50_000,
    '42["a",' * 5_000,
    "4[1]",
    "44/x,",
]
CLIENTS_PER_FRAME = 5


async def test_malformed_frames_close_the_client_with_one_log_line_at_most(
    chat_stack: ChatStack, http: aiohttp.ClientSession, attack_report
) -> None:
    async with gateway_process(chat_stack, "rt-malformed", {}) as gateway:
        log_before = gateway.log_size()
        sent = 0
        for frame in MALFORMED_FRAMES:
            for _ in range(CLIENTS_PER_FRAME):
                ws = await http.ws_connect(gateway.ws_url)
                assert (await ws.receive_str(timeout=CONNECT_TIMEOUT)).startswith("0")
                await ws.send_str(frame)
                await ws.send_str(frame)  # a second bad frame gets no second line
                sent += 2
                closed = await wait_closed(ws)
                assert closed.type == aiohttp.WSMsgType.CLOSE, (frame[:20], closed)
                assert closed.data == POLICY_VIOLATION, (frame[:20], closed)
        # Long-polling: the bad POST is refused and the session is gone.
        sid = await polling_handshake(http, gateway)
        async with http.post(f"{gateway.polling_url}&sid={sid}", data="abc") as reply:
            post_status = reply.status
        async with http.get(f"{gateway.polling_url}&sid={sid}") as reply:
            poll_status = reply.status
        sent += 1
        refused = await metric_value(
            http, gateway, 'chat_inbound_refusals_total{reason="malformed"}'
        )
    # Stopped, the gateway has written all of its log (its output pump is joined).
    per_frame = (gateway.log_size() - log_before) / sent
    text = gateway.log_path.read_text(errors="replace")
    assert (post_status, poll_status) == (400, 400)
    assert refused == len(MALFORMED_FRAMES) * CLIENTS_PER_FRAME + 1
    assert "Traceback" not in text
    assert per_frame < 200, f"{per_frame:.0f} log bytes per malformed frame"
    attack_report(
        "malformed frames",
        f"{per_frame:.0f} log bytes per malformed frame ({sent} frames), each client closed",
    )


HEALTH_SAMPLES = 20
FLOOD_EVENTS = 25_000
FLOOD_SECONDS = 3.0


async def healthz_latency(http: aiohttp.ClientSession, gateway: Gateway, samples: int) -> float:
    """Median /healthz round trip in seconds over `samples` sequential requests."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        async with http.get(f"{gateway.url}/healthz") as reply:
            await reply.read()
        times.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)  # wait-ok: spacing the samples is the measurement
    return statistics.median(times)


async def flood_events(ws: aiohttp.ClientWebSocketResponse) -> int:
    """Send up to FLOOD_EVENTS events for at most FLOOD_SECONDS, or until closed.

    Returns the count sent.
    """
    frame = '42["sendAllMessages",{"text":"flood"}]'
    deadline = time.monotonic() + FLOOD_SECONDS
    sent = 0
    while sent < FLOOD_EVENTS and time.monotonic() < deadline and not ws.closed:
        try:
            await ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            break
        sent += 1
        if sent % 100 == 0:
            await asyncio.sleep(0)  # wait-ok: a yield to the loop, not a wait
    return sent


async def healthz_under_flood(
    http: aiohttp.ClientSession, gateway: Gateway, token: str
) -> tuple[float, float, bool]:
    """(/healthz idle, /healthz under an event flood, whether the flooding client was closed)."""
    idle = await healthz_latency(http, gateway, HEALTH_SAMPLES)
    ws = await open_raw_session(http, gateway.url, token)
    closing = asyncio.ensure_future(wait_closed(ws, timeout=FLOOD_SECONDS + 10))
    flooding = asyncio.ensure_future(flood_events(ws))
    try:
        loaded = await healthz_latency(http, gateway, HEALTH_SAMPLES)
        await flooding
        try:
            await asyncio.wait_for(asyncio.shield(closing), 5)
            closed = True
        except TimeoutError:
            closed = False
    finally:
        closing.cancel()
        await ws.close()
    return idle, loaded, closed


async def test_an_event_flood_disconnects_the_client_and_spares_the_loop(
    chat_stack: ChatStack, new_user, sockets, http: aiohttp.ClientSession, attack_report
) -> None:
    user: User = await new_user()
    async with (
        gateway_process(
            chat_stack, "rt-flood-unlimited", {"INBOUND_PACKETS_PER_SECOND": "0"}
        ) as unlimited,
        gateway_process(chat_stack, "rt-flood-limited", {}) as limited,
    ):
        bystander = await sockets.connect(user.token, limited.url)
        idle_before, loaded_before, _ = await healthz_under_flood(http, unlimited, user.token)
        idle_after, loaded_after, closed = await healthz_under_flood(http, limited, user.token)
        refused = await metric_value(http, limited, 'chat_inbound_refusals_total{reason="rate"}')
        assert bystander.sio.connected  # a client that sends nothing unusual never notices
    assert closed
    assert refused == 1
    ratio_before = loaded_before / idle_before
    ratio_after = loaded_after / idle_after
    attack_report(
        "event flood",
        f"/healthz under flood / idle: {ratio_before:.1f}x without the inbound limit "
        f"({loaded_before * 1000:.0f} ms), {ratio_after:.1f}x with it ({loaded_after * 1000:.0f} "
        "ms); flooder closed",
    )


async def test_an_oversized_polling_post_is_refused_at_once(
    chat_stack: ChatStack, http: aiohttp.ClientSession, attack_report
) -> None:
    async with gateway_process(chat_stack, "rt-big-post", {}) as gateway:
        sid = await polling_handshake(http, gateway)
        url = f"{gateway.polling_url}&sid={sid}"
        started = time.monotonic()
        async with http.post(
            url, data="4" + "x" * 70_000, timeout=aiohttp.ClientTimeout(total=10)
        ) as reply:
            status, body = reply.status, await reply.json(content_type=None)
        took = time.monotonic() - started
        async with http.get(url) as reply:
            later = reply.status
    assert status == 413, body
    assert body["code"] == "payload_too_large"
    assert later == 400
    attack_report("70 KB polling POST", f"413 in {took * 1000:.0f} ms, session closed")


async def test_no_gateway_response_names_the_framework(
    chat_stack: ChatStack, http: aiohttp.ClientSession
) -> None:
    url = chat_stack.gateway_urls[0]
    seen = []
    for path in ("/healthz", "/metrics", "/nowhere", "/socket.io/?EIO=4&transport=polling"):
        async with http.get(url + path) as reply:
            seen.append(reply.headers.get("Server", ""))
    ws = await http.ws_connect(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    )
    try:
        assert ws._response is not None
        seen.append(ws._response.headers.get("Server", ""))
    finally:
        await ws.close()
    for server in seen:
        assert "aiohttp" not in server.lower() and "python" not in server.lower(), seen
