"""Prometheus metrics both services expose on `/metrics`.

Each process has its own registry content; Prometheus scrapes every replica and sums.
Route labels use the route's template (`/messages`), never the raw path, so a client
cannot grow the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_LATENCY = Histogram(
    "chat_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REDIS_RECONNECTS = Counter(
    "chat_redis_reconnects_total",
    "Times a Redis connection was re-established after a failure.",
    ["service", "component"],
)


def route_label(request: web.Request) -> str:
    """The matched route's template, or a fixed label for unmatched paths."""
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


class RequestLatency:
    """Observes `HTTP_LATENCY` for one service.

    Keeps one histogram child per (route, method, status), so a request costs a dict
    lookup instead of prometheus-client's label checks and lock.
    """

    def __init__(self, service: str) -> None:
        self._service = service
        self._children: dict[tuple[str, str, int], Any] = {}

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        key = (route_label(request), request.method, status)
        child = self._children.get(key)
        if child is None:
            child = HTTP_LATENCY.labels(self._service, key[0], key[1], str(status))
            self._children[key] = child
        child.observe(seconds)

    async def measure(
        self, request: web.Request, answer: Awaitable[web.StreamResponse]
    ) -> web.StreamResponse:
        """Await `answer` to `request` and observe its latency and status.

        An HTTPException raised instead (a redirect, say) is observed with its status,
        anything else raised as 500.
        """
        started = time.perf_counter()
        status = 500
        try:
            response = await answer
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.observe(request, status, time.perf_counter() - started)


def http_metrics_middleware(service: str) -> Middleware:
    """Observe the latency and status of every request except WebSocket sessions.

    A WebSocket "request" lasts as long as the connection; its duration is not latency.
    """
    latency = RequestLatency(service)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        return await latency.measure(request, handler(request))

    return middleware


async def metrics_handler(_: web.Request) -> web.Response:
    """The Prometheus text exposition of this process."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
