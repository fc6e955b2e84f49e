"""What every handler needs: the JSON body and the caller's identity."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from services.api_service.errors import Unauthorized, ValidationFailed
from services.api_service.keys import IDENTITY, RATE_LIMITS, SETTINGS, TOKENS
from services.shared.addresses import client_address, forwarded_for_values
from services.shared.auth import Identity, InvalidToken, bearer_token


async def read_json(request: web.Request) -> Any:
    """The parsed body; reading past MAX_BODY_BYTES raises 413 inside aiohttp."""
    raw = await request.read()
    if not raw:
        raise ValidationFailed("request body must be a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationFailed("request body is not valid JSON") from None


def authenticate(request: web.Request) -> Identity:
    """The identity in the request's bearer token, or 401. Never the request body's."""
    if IDENTITY in request:
        return request[IDENTITY]
    try:
        identity = request.app[TOKENS].verify(bearer_token(request.headers.get("Authorization")))
    except InvalidToken as exc:
        raise Unauthorized(f"Unauthorized: {exc.reason}") from None
    request[IDENTITY] = identity
    return identity


async def limit_by_address(request: web.Request, limit_name: str) -> None:
    """Count the request against a per-client-address limit (429 when over it)."""
    address = client_address(
        request.remote,
        forwarded_for_values(request.headers),
        request.app[SETTINGS].common.trusted_proxies,
    )
    await request.app[RATE_LIMITS].check(limit_name, address)


async def limit_by_user(request: web.Request, limit_name: str, identity: Identity, cost: int = 1) -> None:
    """Count `cost` (requests, or rows for history) against a per-user limit (429 when over it)."""
    await request.app[RATE_LIMITS].check(limit_name, identity.user_id, cost)
