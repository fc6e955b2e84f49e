"""The gateway's fast transport keeps the protocol under bursts and its heartbeat.

This holds for every client kind.

Bursts are published straight to a private gateway's channel the way the relay does,
so their size does not depend on timing.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import aiohttp
import pytest
import redis.asyncio as aioredis

from services.shared.redis_contract import (
    Publication,
    RedisKeys,
    emit_packet,
    history_stream_key,
)
from tests.helpers.limits import CONNECT_TIMEOUT
from tests.helpers.processes import extra_process
from tests.helpers.relay import publish_like_the_relay
from tests.helpers.rest import User
from tests.helpers.sockets import SocketFactory, open_raw_session
from tests.helpers.stack import ChatStack

POLL_SECONDS = 0.05
BURST = 60  # well above the 16 packets one long-polling payload may carry


async def publish_burst(
    redis_url: str, channel: str, count: int, text: str = "é" * 100
) -> list[str]:
    """Publish `count` messages with one script call, as the relay does after a group commit."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        publications = []
        for message_id in range(1, count + 1):
            wire = {"_id": str(message_id), "owner": "burst", "userName": "Burst", "text": text}
            publications.append(
                Publication(
                    message_id,
                    message_id - 1,
                    b"{}",
                    emit_packet(wire, message_id, message_id - 1),
                    int(time.time() * 1000),
                )
            )
        await publish_like_the_relay(client, channel, publications)
        return [str(p.id) for p in publications]
    finally:
        keys = RedisKeys(channel)
        await client.delete(history_stream_key(channel), keys.memberships_applied, keys.room_tails)
        await client.aclose()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_a_burst_reaches_each_client_kind_whole_and_in_order(
    chat_stack: ChatStack, new_user, sockets: SocketFactory, transport: str
) -> None:
    if chat_stack.external:
        pytest.skip("publishes to a private gateway's channel")
    user: User = await new_user()
    channel = f"burst-{uuid.uuid4().hex}"
    async with extra_process(
        chat_stack,
        "services.realtime_service",
        {"SOCKETIO_CHANNEL": channel},
        f"rt-burst-{transport}",
    ) as url:
        client = await sockets.connect(user.token, url, transports=[transport])
        sent = await publish_burst(chat_stack.service_env["REDIS_URL"], channel, BURST)
        received = await client.collect(BURST)
        assert [m["_id"] for m in received] == sent
        assert client.sio.connected and client.transport == transport
        assert received[0]["text"] == "é" * 100


async def next_ping(ws: aiohttp.ClientWebSocketResponse) -> float:
    """Wait for the server's next Engine.IO PING; return when it arrived."""
    while True:
        text = await ws.receive_str(timeout=CONNECT_TIMEOUT)
        if text == "2":
            return time.monotonic()


async def answer_pings(ws: aiohttp.ClientWebSocketResponse, answered: asyncio.Queue[float]) -> None:
    """Answer every PING with a PONG, as a live client does, until the connection ends."""
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
            await ws.send_str("3")
            answered.put_nowait(time.monotonic())


async def test_a_client_that_stops_answering_pings_is_closed_and_one_that_answers_stays(
    chat_stack: ChatStack, new_user, http: aiohttp.ClientSession
) -> None:
    if chat_stack.external:
        pytest.skip("starts a gateway with a short heartbeat")
    user: User = await new_user()
    env = {"PING_INTERVAL_SECONDS": "1", "PING_TIMEOUT_SECONDS": "1"}
    async with extra_process(chat_stack, "services.realtime_service", env, "rt-heartbeat") as url:
        silent = await open_raw_session(http, url, user.token)
        live = await open_raw_session(http, url, user.token)
        answered: asyncio.Queue[float] = asyncio.Queue()
        responder = asyncio.ensure_future(answer_pings(live, answered))
        try:
            pinged_at = await next_ping(silent)  # and never answered
            closing = await silent.receive(timeout=CONNECT_TIMEOUT)
            closed_after = time.monotonic() - pinged_at
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert 0.8 <= closed_after < CONNECT_TIMEOUT
            for _ in range(3):  # the answering client outlives several ping timeouts
                await asyncio.wait_for(answered.get(), CONNECT_TIMEOUT)
            assert not live.closed
        finally:
            await live.close()
            await asyncio.wait_for(responder, CONNECT_TIMEOUT)


def tcp_established(sock: socket.socket) -> bool:
    """Whether the kernel still holds `sock` as an established TCP connection (Linux)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == 1  # TCP_ESTABLISHED
    except OSError:  # the descriptor is gone
        return False


async def test_a_client_that_stops_reading_is_cut_off_while_the_others_get_every_message(
    chat_stack: ChatStack, new_user, sockets: SocketFactory, http: aiohttp.ClientSession
) -> None:
    """A stalled reader's connection is dropped at once, even while it still reads nothing.

    Its kernel buffers fill first (a few MB on loopback), then its queue: past that the
    gateway discards its backlog and resets the connection, so neither gateway memory
    nor socket buffers stay held by a client that may never read again.
    """
    if chat_stack.external:
        pytest.skip("starts a gateway with a small per-client queue")
    user: User = await new_user()
    channel = f"stall-{uuid.uuid4().hex}"
    env = {"SOCKETIO_CHANNEL": channel, "MAX_QUEUED_PACKETS_PER_CLIENT": "8"}
    async with extra_process(chat_stack, "services.realtime_service", env, "rt-stall") as url:
        stalled = await open_raw_session(http, url, user.token)  # and never read from again
        stalled_socket = stalled.get_extra_info("socket")
        healthy = await sockets.connect(user.token, url, transports=["websocket"])
        count, text = 500, "x" * 16_000  # 8 MB: more than the stalled connection's buffers hold
        sent = await publish_burst(chat_stack.service_env["REDIS_URL"], channel, count, text)
        received = await healthy.collect(count)
        assert [m["_id"] for m in received] == sent and healthy.sio.connected

        async def reset() -> None:
            while tcp_established(stalled_socket):
                # Kernel socket state has no event to wait on: poll it.
                await asyncio.sleep(POLL_SECONDS)  # wait-ok: polling, with a deadline

        await asyncio.wait_for(reset(), CONNECT_TIMEOUT)
        async with http.get(f"{url}/metrics") as response:
            assert "chat_slow_consumer_disconnects_total 1.0" in await response.text()
        await stalled.close()
