"""Request middlewares: request ids, CORS, and the one place errors become JSON.

Order matters: request ids wrap everything so even errors carry one; CORS wraps the
error middleware so error responses are readable by a browser on another origin.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from services.api_service.errors import ApiError
from services.api_service.keys import REQUEST_ID
from services.shared.web import json_response

log = logging.getLogger("services.api_service.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-ID"
ALLOWED_METHODS = "GET, POST, OPTIONS"
# Probed every few seconds by load balancers; logging each probe would drown the rest.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Honour a well-formed X-Request-ID or make one; echo it and log one line per request."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    if request.path in QUIET_PATHS:
        return response
    log.info(
        "request",
        extra={
            "request_id": request_id, "method": request.method, "path": request.path,
            "status": response.status, "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into `{"message": ..., "code": ...}` with the right status."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body(), status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return json_response({"message": exc.reason, "code": code}, status=exc.status, headers=_kept_headers(exc))
    except Exception:
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID), "path": request.path})
        return json_response({"message": "Internal server error", "code": "internal_error"}, status=500)


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    return {name: value for name, value in exc.headers.items() if name in ("Allow", "Retry-After")}


def cors_middleware(allowed_origins: Iterable[str]) -> Middleware:
    """Answer CORS for an allow-list of origins ("*" allows any; no credentials are used)."""
    origins = frozenset(allowed_origins)
    any_origin = "*" in origins

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = origin is not None and (any_origin or origin in origins)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return json_response({"message": "Origin not allowed", "code": "cors_forbidden"}, status=403)
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = request.headers.get(
                "Access-Control-Request-Headers", ALLOWED_HEADERS
            )
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if allowed:
            assert origin is not None
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
            response.headers.add("Vary", "Origin")
        return response

    return middleware
