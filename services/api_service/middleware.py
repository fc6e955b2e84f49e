"""The API's one middleware: request ids, CORS, JSON errors, security headers, latency, access log.

These are one aiohttp middleware rather than four because every middleware layer costs a
coroutine and a wrapper call on every request: on a bare route, on a slow 2-core
machine, the four cost about 60 µs of CPU per request and the one about 30 µs.
The order inside still matters and is the one the layers had: errors become JSON first,
so CORS headers, the request id and the latency metric apply to error responses too.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from services.api_service.errors import ApiError
from services.api_service.keys import REQUEST_ID
from services.api_service.security_headers import secure
from services.shared.metrics import RequestLatency
from services.shared.web import json_response

log = logging.getLogger("services.api_service.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-ID"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_ALLOWED_METHOD_SET = frozenset(method.strip() for method in ALLOWED_METHODS.split(","))
# Probed every few seconds by load balancers; logging each probe would drown the rest.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})
# Made ids are this process's random prefix and a counter: unique across replicas and
# restarts without asking the kernel for randomness on every request.
_ID_PREFIX = secrets.token_hex(6)
_id_counter = itertools.count(1)


def request_middleware(
    allowed_origins: Iterable[str], body_timeout_seconds: float = 10.0, service: str = "api"
) -> Middleware:
    """The middleware for every API request; CORS allows `allowed_origins` ("*": any).

    A request body must arrive within `body_timeout_seconds` of the handler's start.
    """
    cors = CorsPolicy(allowed_origins)
    latency = RequestLatency(service)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await latency.measure(request, answer(request, handler, cors, body_timeout_seconds))

    return middleware


async def answer(
    request: web.Request, handler: Handler, cors: CorsPolicy, body_timeout_seconds: float
) -> web.StreamResponse:
    """`handler`'s response, or the JSON error it failed with, with id and CORS headers."""
    started = time.perf_counter()
    request_id = request_id_for(request)
    request[REQUEST_ID] = request_id
    origin = cors.allowed_origin(request)
    response: web.StreamResponse
    if cors.is_preflight(request):
        response = cors.preflight(request, origin)
        if response.status >= 400:
            origin = None  # a refused preflight tells the browser nothing it may do
    else:
        try:
            if request.body_exists:
                await read_body(request, body_timeout_seconds)
            response = await handler(request)
        except Exception as exc:  # every failure becomes a JSON answer
            if isinstance(exc, web.HTTPException) and exc.status < 400:
                raise  # a redirect, not an error: aiohttp sends it
            response = error_response(request, exc)
    if origin is not None:
        cors.expose(response, origin)
    secure(response, request.path)
    response.headers["X-Request-ID"] = request_id
    log_request(request, request_id, response.status, started)
    return response


async def read_body(request: web.Request, timeout_seconds: float) -> None:
    """Read the whole body within `timeout_seconds`, or raise `BodyTimeout`.

    aiohttp has no deadline for a body: a client sending one byte a second would hold
    the request, and whatever the handler acquired before reading, for as long as it
    likes. `Request.read()` keeps what it read, so the handler's own `read()` later
    returns the same bytes without waiting; `client_max_size` still bounds the size.
    """
    try:
        async with asyncio.timeout(timeout_seconds):
            await request.read()
    except TimeoutError:
        raise BodyTimeout(timeout_seconds) from None


class BodyTimeout(Exception):
    """The request body did not arrive in time."""

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(f"request body not received within {timeout_seconds:g} s")
        self.timeout_seconds = timeout_seconds


def request_id_for(request: web.Request) -> str:
    """The caller's well-formed X-Request-ID, or a new id unique to this request."""
    incoming = request.headers.get("X-Request-ID")
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    return f"{_ID_PREFIX}{next(_id_counter):08x}"


def log_request(request: web.Request, request_id: str, status: int, started: float) -> None:
    """One access-log line per request, except health probes."""
    if not log.isEnabledFor(logging.INFO) or request.path in QUIET_PATHS:
        return
    log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """`exc` as `{"message": ..., "code": ...}` with the right status."""
    if isinstance(exc, ApiError):
        return json_response(exc.body(), status=exc.status, headers=exc.headers)
    if isinstance(exc, BodyTimeout):
        # The rest of the body may still trickle in: the connection cannot serve another
        # request, so it is closed once this answer is sent.
        response = json_response({"message": str(exc), "code": "request_timeout"}, status=408)
        response.force_close()
        return response
    if isinstance(exc, web.HTTPException):
        code = exc.reason.lower().replace(" ", "_")
        return json_response(
            {"message": exc.reason, "code": code}, status=exc.status, headers=_kept_headers(exc)
        )
    log.exception(
        "unhandled error", extra={"request_id": request.get(REQUEST_ID), "path": request.path}
    )
    return json_response({"message": "Internal server error", "code": "internal_error"}, status=500)


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    return {name: value for name, value in exc.headers.items() if name in ("Allow", "Retry-After")}


class CorsPolicy:
    """CORS for an allow-list of origins ("*" allows any; no credentials are used)."""

    def __init__(self, allowed_origins: Iterable[str]) -> None:
        self._origins = frozenset(allowed_origins)
        self._any = "*" in self._origins

    def allowed_origin(self, request: web.Request) -> str | None:
        """The request's Origin if it may read the response, else None."""
        origin = request.headers.get("Origin")
        if origin is None or not (self._any or origin in self._origins):
            return None
        return origin

    @staticmethod
    def is_preflight(request: web.Request) -> bool:
        return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers

    @staticmethod
    def preflight(request: web.Request, origin: str | None) -> web.Response:
        """The answer to a preflight: the fixed lists of what may be sent, or 403.

        The allowed headers are always `ALLOWED_HEADERS`, never the ones the preflight
        asks for: echoing them would let any header through, and the browser itself
        refuses a request whose headers are not in the list.
        """
        if origin is None:
            return json_response(
                {"message": "Origin not allowed", "code": "cors_forbidden"}, status=403
            )
        if request.headers["Access-Control-Request-Method"] not in _ALLOWED_METHOD_SET:
            return json_response(
                {"message": "Method not allowed", "code": "cors_forbidden"}, status=403
            )
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    @staticmethod
    def expose(response: web.StreamResponse, origin: str) -> None:
        """Let `origin` read `response`, including the headers clients look at."""
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
        response.headers.add("Vary", "Origin")
