"""What an operator relies on: metrics that move, logs without secrets, limits, admin UI."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import socketio

from tests.helpers.metrics import scrape, total
from tests.helpers.processes import extra_process
from tests.helpers.rest import Api, User
from tests.helpers.sockets import SocketFactory
from tests.helpers.stack import ChatStack, require_local


async def test_metrics_move_while_messages_flow(
    http: aiohttp.ClientSession,
    api: Api,
    chat_stack: ChatStack,
    gateway_urls: tuple[str, str],
    new_user: Callable[..., Awaitable[User]],
    sockets: SocketFactory,
) -> None:
    if chat_stack.api_url == chat_stack.lb_url:
        pytest.skip("/metrics is not served through the load balancer (set CHAT_API_URL)")
    user = await new_user()
    gateway = gateway_urls[0]
    api_before, gw_before = await scrape(http, chat_stack.api_url), await scrape(http, gateway)

    sock = await sockets.connect(user.token, gateway, transports=["websocket"])
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sockets.connect("not-a-token", gateway, transports=["websocket"])
    posted = await api.post_message(user, "metrics")
    assert posted.status == 201
    await sock.next_message(lambda m: m["_id"] == posted.body["_id"])

    # The relay counts a publish once Redis has answered, which can be a moment after a
    # client already has the message: wait for the count rather than assume it.
    async def relay_counted() -> dict[tuple[str, frozenset[str]], float]:
        while True:
            samples = await scrape(http, chat_stack.api_url)
            if total(samples, "chat_relay_published_total") > total(
                api_before, "chat_relay_published_total"
            ):
                return samples
            await asyncio.sleep(0.05)  # wait-ok: polling another process's counter

    api_after = await asyncio.wait_for(relay_counted(), 10)
    gw_after = await scrape(http, gateway)
    route = ('route="/messages"', 'method="POST"', 'status="201"')
    assert total(api_after, "chat_http_request_duration_seconds_count", *route) > total(
        api_before, "chat_http_request_duration_seconds_count", *route
    )
    for series in ("chat_relay_published_total", "chat_relay_publish_lag_seconds_count"):
        assert total(api_after, series) > total(api_before, series), series
    assert total(gw_after, "chat_connected_clients") >= 1
    for series in ("chat_fanout_deliveries_total", "chat_fanout_messages_total"):
        assert total(gw_after, series) > total(gw_before, series), series
    refused = ("chat_refused_connections_total", 'reason="unauthorized"')
    assert total(gw_after, *refused) > total(gw_before, *refused)
    # Counters that only move on trouble are still exported, at zero, from the start.
    assert any(n == "chat_slow_consumer_disconnects_total" for n, _ in gw_after)
    assert any(n == "chat_relay_failures_total" for n, _ in api_after)


async def test_logs_are_json_lines_with_request_ids_and_no_tokens(
    http: aiohttp.ClientSession,
    api: Api,
    chat_stack: ChatStack,
    new_user: Callable[..., Awaitable[User]],
    sockets: SocketFactory,
) -> None:
    require_local(chat_stack)
    user = await new_user()
    request_id = f"ops-{uuid.uuid4().hex}"
    async with http.get(
        f"{chat_stack.api_url}/users/me", headers={**user.auth, "X-Request-ID": request_id}
    ) as response:
        assert response.status == 200 and response.headers["X-Request-ID"] == request_id
    await sockets.connect(
        user.token, chat_stack.gateway_urls[0], auth_style="query", transports=["websocket"]
    )
    assert chat_stack.log_dir is not None

    def logged() -> str:
        return "".join(
            p.read_text(errors="replace") for p in Path(chat_stack.log_dir).glob("*.log")
        )

    async def wait_for_line() -> None:
        while request_id not in logged() or user.id not in logged():
            await asyncio.sleep(0.05)  # wait-ok: polling a log file written by another process

    await asyncio.wait_for(wait_for_line(), 10)
    text = logged()
    assert user.token not in text and user.password not in text
    request_line = next(line for line in text.splitlines() if request_id in line)
    assert '"path":"/users/me"' in request_line and '"status":200' in request_line


async def test_sign_in_is_limited_per_client_address_across_api_processes(
    http: aiohttp.ClientSession,
    chat_stack: ChatStack,
    new_user: Callable[..., Awaitable[User]],
) -> None:
    require_local(chat_stack)
    user = await new_user()
    env = {"RATE_LIMIT_AUTH_PER_MINUTE": "3", "MIGRATE_ON_START": "false"}
    async with (
        extra_process(chat_stack, "services.api_service", env, "api-limited-1") as first,
        extra_process(chat_stack, "services.api_service", env, "api-limited-2") as second,
    ):
        client = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}
        statuses = []
        for url in (first, second, first, second):  # the count is shared through Redis
            async with http.post(
                f"{url}/signin",
                json={"email": user.email, "password": user.password},
                headers=client,
            ) as response:
                statuses.append(response.status)
                if response.status == 429:
                    retry_after = int(response.headers["Retry-After"])
                    body = await response.json()
        assert statuses == [200, 200, 200, 429]
        assert 1 <= retry_after <= 60 and body["code"] == "rate_limited"
        # Another client address is not affected.
        async with http.post(
            f"{second}/signin",
            json={"email": user.email, "password": user.password},
            headers={"X-Forwarded-For": "198.51.100.251"},
        ) as response:
            assert response.status == 200


async def test_connections_per_user_are_capped_across_replicas(
    chat_stack: ChatStack,
    new_user: Callable[..., Awaitable[User]],
    sockets: SocketFactory,
) -> None:
    require_local(chat_stack)
    user = await new_user()
    async with (
        extra_process(
            chat_stack,
            "services.realtime_service",
            {"MAX_CONNECTIONS_PER_USER": "2"},
            "rt-capped-1",
        ) as first,
        extra_process(
            chat_stack,
            "services.realtime_service",
            {"MAX_CONNECTIONS_PER_USER": "2"},
            "rt-capped-2",
        ) as second,
    ):
        kept = await sockets.connect(user.token, first, transports=["websocket"])
        await sockets.connect(user.token, second, transports=["websocket"])
        with pytest.raises(socketio.exceptions.ConnectionError):
            refused = await sockets.connect(user.token, first, transports=["websocket"])
        refused = sockets.opened[-1]
        assert any("too many connections" in str(e) for e in refused.connect_errors)
        await kept.close()
        await sockets.connect(user.token, first, transports=["websocket"])  # a slot is free again


def admin_client() -> socketio.AsyncClient:
    return socketio.AsyncClient(reconnection=False, handle_sigint=False)


async def test_admin_ui_is_off_by_default_and_needs_its_credentials(
    chat_stack: ChatStack,
    gateway_urls: tuple[str, str],
) -> None:
    require_local(chat_stack)
    client = admin_client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            gateway_urls[0], namespaces=["/admin"], auth={"username": "a", "password": "b"}
        )
    await client.disconnect()

    env = {"ADMIN_UI_USERNAME": "ops", "ADMIN_UI_PASSWORD": "s3cret-admin"}
    async with extra_process(chat_stack, "services.realtime_service", env, "rt-admin") as url:
        wrong = admin_client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await wrong.connect(
                url, namespaces=["/admin"], auth={"username": "ops", "password": "nope"}
            )
        await wrong.disconnect()
        right = admin_client()
        stats: asyncio.Queue[object] = asyncio.Queue()
        right.on("server_stats", stats.put_nowait, namespace="/admin")
        await right.connect(
            url,
            namespaces=["/admin"],
            auth={"username": "ops", "password": "s3cret-admin"},
            transports=["websocket"],
        )
        try:
            assert await asyncio.wait_for(stats.get(), 10)
        finally:
            await right.disconnect()
