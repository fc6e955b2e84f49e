"""aiohttp pieces both services serve the same way: health checks and process start-up."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from services.shared.bad_requests import quiet_malformed_requests

ReadinessCheck = Callable[[], Awaitable[object]]
log = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0


def json_response(
    data: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response encoded with orjson straight to the body's bytes.

    aiohttp's json_response wants a str, which costs a decode here and an encode there.
    """
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def health_routes(
    checks: Mapping[str, ReadinessCheck], optional: Mapping[str, ReadinessCheck] | None = None
) -> list[web.RouteDef]:
    """`/healthz` says the process serves requests; `/readyz` that its dependencies answer.

    A load balancer or orchestrator takes a replica out of rotation on a failing
    `/readyz` without restarting it, which is why the two are separate. Only `checks`
    decide readiness; a failing `optional` dependency (one the process can serve
    without, in a reduced way) is reported as "degraded" and the answer stays 200, so
    an outage of it does not take every replica out of rotation at once.
    """
    optional = optional or {}

    async def healthz(_: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        names = [*checks, *optional]
        outcomes = await asyncio.gather(
            *(_run_check(name, check) for name, check in [*checks.items(), *optional.items()])
        )
        results = dict(zip(names, outcomes, strict=True))
        ready = all(results[name] for name in checks)
        body = {
            name: "ok" if ok else "unavailable" for name, ok in results.items() if name in checks
        }
        body.update({name: "ok" if results[name] else "degraded" for name in optional})
        # The pid lets a launcher tell its own process from an older one on the same port.
        return json_response(
            {"status": "ready" if ready else "unavailable", **body, "pid": os.getpid()},
            status=200 if ready else 503,
        )

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


async def _run_check(name: str, check: ReadinessCheck) -> bool:
    """Whether `check` answers within READINESS_TIMEOUT_SECONDS."""
    try:
        await asyncio.wait_for(check(), READINESS_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is logged
        log.warning("readiness check failed", extra={"check": name, "error": repr(exc)})
        return False
    return True


def serve(app: web.Application, host: str, port: int, shutdown_timeout: float = 10.0) -> None:
    """Run the app on uvloop until SIGINT/SIGTERM, then shut down gracefully.

    After the app's on_shutdown hooks, requests still in progress get `shutdown_timeout`
    seconds to finish before aiohttp cancels them (and as long again to unwind).
    """
    quiet_malformed_requests()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        loop=loop,
    )
