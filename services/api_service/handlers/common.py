"""What every handler needs: the JSON body and the caller's identity."""

from __future__ import annotations

from aiohttp import web

from services.api_service.db.messages import InsertResult
from services.api_service.errors import Conflict, Unauthorized
from services.api_service.keys import IDENTITY, RATE_LIMITS, SETTINGS, TOKENS
from services.shared.addresses import client_address, forwarded_for_values
from services.shared.auth import Identity, InvalidToken, bearer_token


async def read_body(request: web.Request) -> bytes:
    """The raw body, for validation.py to parse with a model; past MAX_BODY_BYTES: 413."""
    return await request.read()


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


async def limit_by_user(
    request: web.Request, limit_name: str, identity: Identity, cost: int = 1
) -> None:
    """Count `cost` (requests, or rows for history) against a per-user limit (429 when over it)."""
    await request.app[RATE_LIMITS].check(limit_name, identity.user_id, cost)


def check_same_room(result: InsertResult, room: str) -> None:
    """Refuse a "retry" whose stored message is in another room than the one posted to.

    A client `id` is one author's idempotency key across all rooms. A client that reused
    one for a new message in another room would otherwise get the old message back with
    200, and its post would be lost without a word.
    """
    if not result.created and result.message.room != room:
        raise Conflict(
            "This id was used for a message in another room; send a new id", code="id_in_use"
        )
