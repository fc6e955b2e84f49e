"""Revoked users (a deleted account) lose the gateway at once, on every replica.

The API's account deletion is simulated with `revoke_user`, the Redis contract it
follows (services/shared/redis_contract.py): the mark refuses new connections, the
announcement drops live ones wherever they are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from services.shared.redis_contract import RedisKeys
from services.shared.revocation import revoke_user
from tests.helpers.limits import DELIVERY_TIMEOUT
from tests.helpers.processes import extra_process
from tests.helpers.rest import User
from tests.helpers.sockets import ChatSocket, SocketFactory
from tests.helpers.stack import ChatStack

pytestmark = [pytest.mark.security, pytest.mark.timeout(90)]


@pytest.fixture
async def stack_redis(chat_stack: ChatStack) -> AsyncIterator[aioredis.Redis]:
    if not chat_stack.service_env:
        pytest.skip("needs the local stack's Redis")
    client = aioredis.Redis.from_url(chat_stack.service_env["REDIS_URL"])
    try:
        yield client
    finally:
        await client.aclose()


def watch_disconnect(sock: ChatSocket) -> asyncio.Event:
    """An event set when the server ends this socket's session."""
    gone = asyncio.Event()

    async def on_disconnect(*_reason: object) -> None:
        gone.set()

    sock.sio.on("disconnect", on_disconnect)
    return gone


async def revoke(chat_stack: ChatStack, redis: aioredis.Redis, user: User) -> None:
    await revoke_user(
        redis, RedisKeys(chat_stack.service_env["SOCKETIO_CHANNEL"]), user.id, ttl_seconds=300
    )


async def test_revoked_user_is_dropped_on_every_replica_and_refused_after(
    chat_stack: ChatStack,
    gateway_urls: tuple[str, str],
    new_user: Callable[..., Awaitable[User]],
    sockets: SocketFactory,
    stack_redis: aioredis.Redis,
    attack_report: Callable[[str, str], None],
) -> None:
    deleted, bystander = await new_user(), await new_user()
    on_first = await sockets.connect(deleted.token, gateway_urls[0], auth_style="auth")
    on_second = await sockets.connect(deleted.token, gateway_urls[1], transports=["websocket"])
    neighbour = await sockets.connect(bystander.token, gateway_urls[1], auth_style="auth")
    dropped = [watch_disconnect(on_first), watch_disconnect(on_second)]
    neighbour_gone = watch_disconnect(neighbour)

    started = time.monotonic()
    await revoke(chat_stack, stack_redis, deleted)
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in dropped)), DELIVERY_TIMEOUT)
    elapsed_ms = (time.monotonic() - started) * 1000

    reasons = [
        await sockets.refused(deleted.token, url, auth_style=style)
        for url in gateway_urls
        for style in ("auth", "header")
    ]
    assert all("revoked" in reason for reason in reasons), reasons
    assert not neighbour_gone.is_set() and neighbour.sio.connected, "other users keep their sockets"
    again = await sockets.connect(bystander.token, gateway_urls[0])
    assert again.sio.connected
    attack_report(
        "deleted account's token",
        f"both replicas dropped its sockets {elapsed_ms:.0f} ms after the announcement; "
        f"{len(reasons)}/{len(reasons)} reconnects refused ('access revoked')",
    )


async def test_revoked_user_is_refused_when_the_connection_cap_is_off(
    chat_stack: ChatStack,
    new_user: Callable[..., Awaitable[User]],
    sockets: SocketFactory,
    stack_redis: aioredis.Redis,
) -> None:
    user = await new_user()
    async with extra_process(
        chat_stack, "services.realtime_service", {"MAX_CONNECTIONS_PER_USER": "0"}, "gateway-nocap"
    ) as url:
        live = await sockets.connect(user.token, url, auth_style="auth")
        dropped = watch_disconnect(live)
        await revoke(chat_stack, stack_redis, user)
        await asyncio.wait_for(dropped.wait(), DELIVERY_TIMEOUT)
        assert "revoked" in await sockets.refused(user.token, url, auth_style="auth")
