"""Two gateways in one process share nothing; a gateway's shutdown leaves no task behind.

The transport's frame cache, task set, write-batching list and aiohttp writer state
belong to the server that uses them (transport.FastEngineIOServer). Both gateways run
here on aiohttp's test servers against the real Redis, with real Socket.IO clients.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid

import aiohttp
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from services.realtime_service.app import SIO, create_app
from services.realtime_service.settings import RealtimeSettings
from services.realtime_service.transport import FastEngineIOServer
from services.shared.auth import Identity, issue_token
from services.shared.config import Env
from services.shared.redis_contract import emit_packet
from tests.helpers.limits import REDIS_URL
from tests.helpers.sockets import ChatSocket

JWT_SECRET = secrets.token_urlsafe(32)


def gateway_settings(channel: str) -> RealtimeSettings:
    return RealtimeSettings.from_env(
        Env(
            {
                "APP_ENV": "test",
                "JWT_SECRET": JWT_SECRET,
                "REDIS_URL": REDIS_URL,
                "SOCKETIO_CHANNEL": channel,
                "REPLICA_NAME": channel,
            }
        )
    )


async def test_two_gateways_in_one_process_share_nothing_and_leave_no_task() -> None:
    before = asyncio.all_tasks()
    channels = [f"isolation-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    servers = [TestServer(create_app(gateway_settings(channel))) for channel in channels]
    sockets: list[ChatSocket] = []
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        for server in servers:
            await server.start_server()
        engines = [server.app[SIO].eio for server in servers]
        assert all(isinstance(eio, FastEngineIOServer) for eio in engines)
        first, second = engines
        assert first.frames is not second.frames
        assert first.tasks is not second.tasks
        assert first.uncorker is not second.uncorker
        assert first.idle_writer_state is not second.idle_writer_state
        assert (
            first.idle_writer_state.values["_send_lock"]
            is not second.idle_writer_state.values["_send_lock"]
        )

        token = issue_token(Identity(user_id=str(uuid.uuid4()), name="Iso"), JWT_SECRET, 300)
        for server in servers:
            socket = ChatSocket("isolation", http=aiohttp.ClientSession(), reconnection=False)
            sockets.append(socket)
            await socket.sio.connect(
                str(server.make_url("/")),
                auth={"token": token},
                transports=["websocket"],
                wait_timeout=10,
            )
        for index, channel in enumerate(channels):
            await redis.publish(channel, emit_packet({"_id": "1", "text": f"to {index}"}, 1, 0))
        for index, socket in enumerate(sockets):
            assert (await socket.next_message(timeout=10))["text"] == f"to {index}"
        # Each server's frame cache holds its own message only.
        texts = [f'42["getAllmessages",{{"_id":"1","text":"to {index}"}}]' for index in range(2)]
        assert texts[0] in first.frames and texts[0] not in second.frames
        assert texts[1] in second.frames and texts[1] not in first.frames
        assert len(first.tasks) > 0  # at least python-socketio's channel listener
    finally:
        for socket in sockets:
            await socket.close()
        for server in servers:
            await server.close()
        await redis.aclose()
    assert all(len(server.app[SIO].eio.tasks) == 0 for server in servers)
    await asyncio.sleep(0)  # wait-ok: one loop turn, for cancelled tasks' done-callbacks
    left = {task for task in asyncio.all_tasks() - before if not task.done()} - {
        asyncio.current_task()
    }
    assert not left, f"tasks left running after shutdown: {left}"
