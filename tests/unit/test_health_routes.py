"""`/readyz`: required dependencies decide readiness, optional ones only report "degraded"."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.shared.web import ReadinessCheck, health_routes


async def answers() -> object:
    return True


async def fails() -> object:
    raise ConnectionRefusedError("down")


@pytest.fixture
async def client_for() -> AsyncIterator:
    clients: list[TestClient] = []

    async def make(
        checks: dict[str, ReadinessCheck], optional: dict[str, ReadinessCheck]
    ) -> TestClient:
        app = web.Application()
        app.add_routes(health_routes(checks, optional=optional))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def without_pid(body: Awaitable[dict[str, object]]) -> dict[str, object]:
    """A readiness body less the answering process's pid (which every answer carries)."""
    answer = dict(await body)
    assert answer.pop("pid") == os.getpid()
    return answer


@pytest.mark.parametrize(
    ("required", "optional", "status", "body"),
    [
        (answers, answers, 200, {"status": "ready", "postgres": "ok", "redis": "ok"}),
        (answers, fails, 200, {"status": "ready", "postgres": "ok", "redis": "degraded"}),
        (fails, answers, 503, {"status": "unavailable", "postgres": "unavailable", "redis": "ok"}),
        (
            fails,
            fails,
            503,
            {"status": "unavailable", "postgres": "unavailable", "redis": "degraded"},
        ),
    ],
)
async def test_only_required_checks_decide_readiness(
    client_for,
    required: ReadinessCheck,
    optional: ReadinessCheck,
    status: int,
    body: dict[str, str],
) -> None:
    client = await client_for({"postgres": required}, {"redis": optional})
    reply = await client.get("/readyz")
    assert (reply.status, await without_pid(reply.json())) == (status, body)


async def test_a_required_redis_still_decides_readiness(client_for) -> None:
    """The gateway cannot deliver without Redis: there it stays required."""
    client = await client_for({"redis": fails}, {})
    reply = await client.get("/readyz")
    assert (reply.status, await without_pid(reply.json())) == (
        503,
        {"status": "unavailable", "redis": "unavailable"},
    )
