"""The gateway speaks Engine.IO v4 and Socket.IO v5 as the specifications write them.

Packet-level tests with a raw WebSocket and raw HTTP long-polling (aiohttp's client),
in the style of the specifications' own examples and of the socket.io protocol test
suites. docs/PROTOCOL.md maps each MUST of the two specifications to its test.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.helpers.limits import CONNECT_TIMEOUT
from tests.helpers.rest import User
from tests.helpers.stack import ChatStack


@pytest.fixture
def gateway(chat_stack: ChatStack) -> str:
    if not chat_stack.gateway_urls:
        pytest.skip("needs a direct gateway URL")
    return chat_stack.gateway_urls[0]


def ws_url(gateway: str, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return gateway.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket" + extra


async def polling_session(http: aiohttp.ClientSession, gateway: str) -> tuple[str, str]:
    """Open a long-polling session: (its sid, its polling URL)."""
    async with http.get(f"{gateway}/socket.io/?EIO=4&transport=polling") as reply:
        assert reply.status == 200
        opened = await reply.text()
    assert opened.startswith("0"), opened
    sid = json.loads(opened[1:])["sid"]
    return sid, f"{gateway}/socket.io/?EIO=4&transport=polling&sid={sid}"


async def waiting_polls(http: aiohttp.ClientSession, gateway: str) -> float:
    """How many long-polls the gateway holds open (its `chat_long_polls_waiting` gauge)."""
    async with http.get(f"{gateway}/metrics") as reply:
        text = await reply.text()
    for line in text.splitlines():
        if line.startswith("chat_long_polls_waiting "):
            return float(line.split()[1])
    raise AssertionError("the gateway does not export chat_long_polls_waiting")


async def poll_in_flight(
    http: aiohttp.ClientSession, gateway: str, url: str
) -> asyncio.Future[tuple[int, str]]:
    """Start a long-poll on `url` and return once the gateway holds it open."""
    before = await waiting_polls(http, gateway)
    pending = asyncio.ensure_future(get(http, url))
    async with asyncio.timeout(CONNECT_TIMEOUT):
        while await waiting_polls(http, gateway) <= before:
            await asyncio.sleep(0.01)  # wait-ok: polling a server-side gauge, with a deadline
    return pending


async def get(
    http: aiohttp.ClientSession, url: str, method: str = "GET", data: str | None = None
) -> tuple[int, str]:
    async with http.request(method, url, data=data) as reply:
        return reply.status, await reply.text()


async def test_handshake_opens_a_session_over_polling_and_websocket(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    status, text = await get(http, f"{gateway}/socket.io/?EIO=4&transport=polling")
    assert status == 200 and text.startswith("0")
    opened = json.loads(text[1:])
    assert set(opened) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert opened["upgrades"] == ["websocket"]
    ws = await http.ws_connect(ws_url(gateway))
    try:
        handshake = json.loads((await ws.receive_str(timeout=CONNECT_TIMEOUT))[1:])
        assert handshake["upgrades"] == []
    finally:
        await ws.close()


@pytest.mark.parametrize(
    "query", ["EIO=4", "EIO=4&transport=abc", "transport=polling", "EIO=abc&transport=polling"]
)
async def test_a_handshake_without_a_valid_transport_or_version_is_400(
    http: aiohttp.ClientSession, gateway: str, query: str
) -> None:
    status, _ = await get(http, f"{gateway}/socket.io/?{query}")
    assert status == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_a_handshake_with_an_unsupported_method_is_400(
    http: aiohttp.ClientSession, gateway: str, method: str
) -> None:
    status, _ = await get(http, f"{gateway}/socket.io/?EIO=4&transport=polling", method)
    assert status == 400


async def test_a_close_packet_over_websocket_closes_the_session_and_the_websocket(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    ws = await http.ws_connect(ws_url(gateway))
    try:
        sid = json.loads((await ws.receive_str(timeout=CONNECT_TIMEOUT))[1:])["sid"]
        await ws.send_str("1")
        message = await ws.receive(timeout=CONNECT_TIMEOUT)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
    finally:
        await ws.close()
    status, _ = await get(http, f"{gateway}/socket.io/?EIO=4&transport=polling&sid={sid}")
    assert status == 400


async def test_a_close_posted_during_a_poll_completes_the_poll_with_a_noop(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    _, url = await polling_session(http, gateway)
    pending = await poll_in_flight(http, gateway, url)
    posted = await get(http, url, "POST", "1")
    polled = await asyncio.wait_for(pending, CONNECT_TIMEOUT)
    later = await get(http, url)
    assert posted[0] == 200 and posted[1].lower() == "ok"
    assert polled == (200, "6")
    assert later[0] == 400


async def test_a_close_posted_with_no_poll_pending_ends_the_session(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    _, url = await polling_session(http, gateway)
    posted = await get(http, url, "POST", "1")
    assert posted[0] == 200 and posted[1].lower() == "ok"
    assert (await get(http, url))[0] == 400


async def test_a_duplicate_poll_closes_the_session(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    _, url = await polling_session(http, gateway)
    first = await poll_in_flight(http, gateway, url)
    second = await get(http, url)
    assert await asyncio.wait_for(first, CONNECT_TIMEOUT) == (200, "1")
    assert second[0] == 400
    assert (await get(http, url))[0] == 400


async def test_an_invalid_polling_payload_closes_the_session(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    _, url = await polling_session(http, gateway)
    assert (await get(http, url, "POST", "abc"))[0] == 400
    assert (await get(http, url))[0] == 400


async def upgrade(
    http: aiohttp.ClientSession, gateway: str, sid: str, url: str
) -> aiohttp.ClientWebSocketResponse:
    """The polling-to-WebSocket upgrade as the specification shows it."""
    ws = await http.ws_connect(ws_url(gateway, sid=sid))
    await ws.send_str("2probe")
    assert await ws.receive_str(timeout=CONNECT_TIMEOUT) == "3probe"
    assert await get(http, url) == (200, "6")  # the pending-or-next poll is ended with a noop
    await ws.send_str("5")
    assert await ws.receive_str(timeout=CONNECT_TIMEOUT) == "6"  # what was queued for the poll
    return ws


async def test_upgrade_then_a_second_websocket_for_the_session_is_accepted_and_closed(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    sid, url = await polling_session(http, gateway)
    ws = await upgrade(http, gateway, sid, url)
    try:
        assert (await get(http, url))[0] == 400  # HTTP requests for an upgraded session
        second = await http.ws_connect(ws_url(gateway, sid=sid))
        message = await second.receive(timeout=CONNECT_TIMEOUT)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        await second.close()
        assert not ws.closed  # the session's own WebSocket goes on
        await ws.send_str("1")
        closing = await ws.receive(timeout=CONNECT_TIMEOUT)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await ws.close()


async def test_connecting_to_an_unknown_namespace_is_an_invalid_namespace_error(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    ws = await http.ws_connect(ws_url(gateway))
    try:
        await ws.receive_str(timeout=CONNECT_TIMEOUT)
        await ws.send_str("40/random,")
        assert (
            await ws.receive_str(timeout=CONNECT_TIMEOUT)
            == '44/random,{"message":"Invalid namespace"}'
        )
    finally:
        await ws.close()


async def sign_in(ws: aiohttp.ClientWebSocketResponse, user: User) -> str:
    """Read the Engine.IO open packet and send the namespace CONNECT; return the answer."""
    await ws.receive_str(timeout=CONNECT_TIMEOUT)
    await ws.send_str("40" + json.dumps({"token": user.token}))
    return await ws.receive_str(timeout=CONNECT_TIMEOUT)


async def wait_websocket_closed(
    ws: aiohttp.ClientWebSocketResponse, allowed_text: tuple[str, ...]
) -> None:
    """Wait for the server to close `ws`; text frames before that must be in `allowed_text`."""
    while (message := await ws.receive(timeout=CONNECT_TIMEOUT)).type == aiohttp.WSMsgType.TEXT:
        assert message.data in allowed_text, message.data
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message


async def test_connect_event_and_disconnect_on_the_main_namespace(
    http: aiohttp.ClientSession, gateway: str, new_user
) -> None:
    user: User = await new_user()
    ws = await http.ws_connect(ws_url(gateway))
    try:
        connected = await sign_in(ws, user)
        assert connected.startswith("40{") and "sid" in json.loads(connected[2:])
        await ws.send_str('42["sendAllMessages",{"text":"ignored"}]')  # an event; ignored by design
        await ws.send_str("41")
        await ws.send_str("1")
        await wait_websocket_closed(
            ws, allowed_text=("1",)
        )  # the server's own CLOSE may come first
    finally:
        await ws.close()


async def test_a_namespace_disconnect_ends_the_engineio_session(
    http: aiohttp.ClientSession, gateway: str, new_user
) -> None:
    """Left open, the session would idle on, pinged, counted against no cap."""
    user: User = await new_user()
    ws = await http.ws_connect(ws_url(gateway))
    try:
        assert (await sign_in(ws, user)).startswith("40{")
        await ws.send_str("41")  # the namespace only: no Engine.IO close from the client
        await wait_websocket_closed(ws, allowed_text=("1", "2"))  # CLOSE (or a ping) first
    finally:
        await ws.close()


async def test_an_undecodable_upgrade_probe_closes_the_session_as_malformed(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    sid, url = await polling_session(http, gateway)
    ws = await http.ws_connect(ws_url(gateway, sid=sid))
    try:
        await ws.send_str("x")  # not an Engine.IO packet (the probe should be "2probe")
        while (message := await ws.receive(timeout=CONNECT_TIMEOUT)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert message.type == aiohttp.WSMsgType.CLOSE, message
    finally:
        await ws.close()
    assert (await get(http, url))[0] == 400  # refused: the session is gone


async def test_a_refused_connect_is_a_connect_error_with_a_message(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    ws = await http.ws_connect(ws_url(gateway))
    try:
        await ws.receive_str(timeout=CONNECT_TIMEOUT)
        await ws.send_str('40{"token":"not-a-token"}')
        refused = await ws.receive_str(timeout=CONNECT_TIMEOUT)
        assert refused.startswith("44{")
        assert isinstance(json.loads(refused[2:])["message"], str)
    finally:
        await ws.close()


async def test_the_server_pings_and_a_pong_keeps_the_session(
    http: aiohttp.ClientSession, gateway: str
) -> None:
    # The stack's ping interval is long; a pong sent unasked is simply accepted.
    ws = await http.ws_connect(ws_url(gateway))
    try:
        await ws.receive_str(timeout=CONNECT_TIMEOUT)
        await ws.send_str("3")
        await ws.send_str("40/random,")
        assert (await ws.receive_str(timeout=CONNECT_TIMEOUT)).startswith("44/random,")
    finally:
        await ws.close()
