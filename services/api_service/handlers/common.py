"""What every handler needs: the JSON body and the caller's identity."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from services.api_service.errors import Unauthorized, ValidationFailed
from services.api_service.keys import IDENTITY, SETTINGS
from services.shared.auth import Identity, InvalidToken, bearer_token, verify_token


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
    secret = request.app[SETTINGS].common.jwt_secret.value
    try:
        identity = verify_token(bearer_token(request.headers.get("Authorization")), secret)
    except InvalidToken as exc:
        raise Unauthorized(f"Unauthorized: {exc.reason}") from None
    request[IDENTITY] = identity
    return identity
