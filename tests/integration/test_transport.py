"""The gateway's fast transport keeps the protocol under bursts, for every client kind.

Bursts are published straight to a private gateway's channel the way the relay does,
so their size does not depend on timing.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis

from services.api_service.relay import PUBLISH_ONCE
from services.shared.fanout import emit_packet, history_stream_key
from tests.integration.harness import ChatStack, SocketFactory, User, extra_process

BURST = 60  # well above the 16 packets one long-polling payload may carry


async def publish_burst(redis_url: str, channel: str, count: int) -> list[str]:
    """Publish `count` messages in one pipeline, as the relay does after a group commit."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        script = client.register_script(PUBLISH_ONCE)
        pipe = client.pipeline(transaction=False)
        ids = []
        for message_id in range(1, count + 1):
            wire = {"_id": str(message_id), "owner": "burst", "userName": "Burst", "text": "é" * 100}
            await script(
                keys=[history_stream_key(channel)],
                args=[channel, message_id, message_id - 1, b"{}", emit_packet(wire, message_id, message_id - 1),
                      1000, int(time.time() * 1000)],
                client=pipe,
            )
            ids.append(str(message_id))
        await pipe.execute()
        return ids
    finally:
        await client.delete(history_stream_key(channel))
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
        chat_stack, "services.realtime_service", {"SOCKETIO_CHANNEL": channel}, f"rt-burst-{transport}"
    ) as url:
        client = await sockets.connect(user.token, url, transports=[transport])
        sent = await publish_burst(chat_stack.service_env["REDIS_URL"], channel, BURST)
        received = await client.collect(BURST)
        assert [m["_id"] for m in received] == sent
        assert client.sio.connected and client.transport == transport
        assert received[0]["text"] == "é" * 100
