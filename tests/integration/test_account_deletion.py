"""Deleting one's account, and what a deleted account's tokens can still do: nothing.

A token is verified by signature alone, so it outlives the account it names. The API
refuses it on every authenticated route (each route's query joins the account), the
gateways are told through Redis, and one such token never fails other people's posts.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.shared.auth import CLOCK_SKEW_SECONDS
from services.shared.config import DEFAULT_JWT_MAX_LIFETIME_SECONDS
from services.shared.redis_contract import revoked_key
from stack import REPO_ROOT, free_port
from stack.process import ManagedProcess, wait_http_ok
from tests.helpers.rest import Api, User, assert_error, sign_up_and_in
from tests.helpers.sockets import SocketFactory, by_owner
from tests.helpers.stack import ChatStack


def _local(chat_stack: ChatStack) -> None:
    if chat_stack.external:
        pytest.skip("reads the stack's database and Redis")


async def _delete_row(chat_stack: ChatStack, user: User) -> None:
    """Delete the account behind the API's back, as an operator or a race would."""
    conn = await asyncpg.connect(chat_stack.service_env["DATABASE_URL"])
    try:
        await conn.execute("DELETE FROM users WHERE id = $1::uuid", user.id)
    finally:
        await conn.close()


async def _account_exists(chat_stack: ChatStack, user: User) -> bool:
    conn = await asyncpg.connect(chat_stack.service_env["DATABASE_URL"])
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM users WHERE id = $1::uuid", user.id))
    finally:
        await conn.close()


@pytest.mark.security
async def test_a_deleted_accounts_posts_fail_alone_and_fifty_concurrent_posts_all_land(
    chat_stack: ChatStack, api: Api, sockets: SocketFactory, attack_report
) -> None:
    _local(chat_stack)
    writers = [await sign_up_and_in(api) for _ in range(10)]
    gone = await sign_up_and_in(api)
    await _delete_row(chat_stack, gone)
    reader = await sockets.connect(writers[0].token)

    good = [api.post_message(w, f"legit {w.name} {i}") for w in writers for i in range(5)]
    bad = [api.post_message(gone, f"from a deleted account {i}") for i in range(10)]
    replies = await asyncio.gather(*good, *bad)
    good_replies, bad_replies = replies[: len(good)], replies[len(good) :]

    assert [r.status for r in good_replies] == [201] * 50
    for reply in bad_replies:
        assert "no longer exists" in assert_error(reply, 401)
    delivered = await reader.collect(50, by_owner(*writers))
    assert {m["_id"] for m in delivered} == {r.body["_id"] for r in good_replies}
    attack_report(
        "posts with a deleted account's token",
        f"{sum(r.status == 201 for r in good_replies)}/50 legitimate posts 201 and delivered, "
        f"{sum(r.status == 401 for r in bad_replies)}/10 bad ones 401",
    )


@pytest.mark.security
async def test_a_deleted_accounts_token_is_refused_by_every_route(
    chat_stack: ChatStack, api: Api
) -> None:
    _local(chat_stack)
    user = await sign_up_and_in(api)
    await _delete_row(chat_stack, user)
    for method, path, body in [
        ("GET", "/users/me", None),
        ("GET", "/messages", None),
        ("GET", "/messages?after=0&limit=5", None),
        ("POST", "/messages", {"id": str(uuid.uuid4()), "text": "still here?"}),
    ]:
        reply = await api.request(method, path, token=user.token, json=body)
        assert "no longer exists" in assert_error(reply, 401), (method, path)


async def test_deleting_ones_account_needs_the_password(chat_stack: ChatStack, api: Api) -> None:
    _local(chat_stack)
    user = await sign_up_and_in(api)
    wrong = await api.request(
        "DELETE", "/users/me", token=user.token, json={"password": "not-it-at-all"}
    )
    assert_error(wrong, 403)
    assert_error(await api.request("DELETE", "/users/me", token=user.token, json={}), 400)
    assert_error(await api.request("DELETE", "/users/me", json={"password": user.password}), 401)
    assert await _account_exists(chat_stack, user)
    assert (await api.request("GET", "/users/me", token=user.token)).status == 200


async def test_a_deleted_account_is_revoked_everywhere_and_its_messages_stay(
    chat_stack: ChatStack, api: Api, sockets: SocketFactory
) -> None:
    _local(chat_stack)
    user, other = await sign_up_and_in(api), await sign_up_and_in(api)
    said = await api.send(user, "a message that others answered")
    answer = await api.send(other, "an answer")

    deleted = await api.request(
        "DELETE", "/users/me", token=user.token, json={"password": user.password}
    )
    assert deleted.status == 204, deleted.text

    assert not await _account_exists(chat_stack, user)
    assert_error(await api.request("GET", "/users/me", token=user.token), 401)
    assert_error(await api.post_message(user, "after deletion"), 401)
    assert_error(await api.signin(user.email, user.password), 401)
    # The shared history keeps the message, id and text, without the author's name.
    history = await api.history(other, after=int(said["_id"]) - 1, limit=10)
    kept = next(m for m in history if m["_id"] == said["_id"])
    assert kept["text"] == said["text"] and kept["userName"] == "Deleted user"
    assert any(m["_id"] == answer["_id"] for m in history)
    # The mark every gateway checks, for as long as any of the account's tokens can live.
    client = aioredis.Redis.from_url(chat_stack.service_env["REDIS_URL"])
    try:
        key = revoked_key(chat_stack.service_env["SOCKETIO_CHANNEL"], user.id)
        ttl = await client.ttl(key)
    finally:
        await client.aclose()
    longest = DEFAULT_JWT_MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS  # `iat` may be that far ahead
    assert longest - 60 < ttl <= longest


@asynccontextmanager
async def api_without_redis(chat_stack: ChatStack) -> AsyncIterator[str]:
    """One more API process on the stack's database whose Redis is unreachable."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    port = free_port()
    assert chat_stack.log_dir is not None
    # The per-address limit is off so the revocation, not the limiter, meets Redis first.
    env = {
        **os.environ,
        **chat_stack.service_env,
        "PORT": str(port),
        "REDIS_URL": dead_redis,
        "MIGRATE_ON_START": "false",
        "RATE_LIMIT_AUTH_PER_MINUTE": "0",
    }
    proc = ManagedProcess(
        "api-no-redis",
        [sys.executable, "-m", "services.api_service"],
        env,
        Path(chat_stack.log_dir) / "api-no-redis.log",
        REPO_ROOT,
    )
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}"
        # /readyz reports Redis down by design; liveness is what this test needs.
        await asyncio.to_thread(
            wait_http_ok, proc, f"{url}/healthz", asyncio.get_running_loop().time() + 30
        )
        yield url
    finally:
        await asyncio.to_thread(proc.stop)


async def test_while_redis_is_down_deletion_is_refused_and_nothing_is_deleted(
    chat_stack: ChatStack, api: Api
) -> None:
    _local(chat_stack)
    user = await sign_up_and_in(api)
    async with api_without_redis(chat_stack) as url:
        reply = await api.request(
            "DELETE", "/users/me", token=user.token, json={"password": user.password}, base_url=url
        )
    assert_error(reply, 503)
    assert int(reply.headers["Retry-After"]) > 0
    assert await _account_exists(chat_stack, user)
    assert (await api.request("GET", "/users/me", token=user.token)).status == 200
