"""Sign-up, sign-in, the current user and deleting one's account."""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions
from aiohttp import web

from services.api_service import validation
from services.api_service.db import users
from services.api_service.errors import Conflict, Forbidden, Unauthorized, Unavailable
from services.api_service.handlers.common import authenticate, limit_by_address, read_body
from services.api_service.keys import DB_POOL, PASSWORDS, REDIS, SETTINGS
from services.shared.auth import CLOCK_SKEW_SECONDS, Identity, issue_token
from services.shared.names import plain_name
from services.shared.revocation import revoke_user
from services.shared.web import json_response

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "Incorrect email or password"
ACCOUNT_GONE = "Unauthorized: user no longer exists"
REVOCATION_TIMEOUT_SECONDS = 2.0
REVOCATION_RETRY_AFTER_SECONDS = 5


async def signup(request: web.Request) -> web.Response:
    await limit_by_address(request, "auth")
    form = validation.parse_signup(await read_body(request))
    password_hash = await request.app[PASSWORDS].hash(form.password)
    async with request.app[DB_POOL].acquire() as conn:
        try:
            user = await users.create_user(conn, form.name, form.email, password_hash)
        except users.EmailTaken:
            raise Conflict("A user with this email already exists") from None
    return json_response(user.public(), status=201)


async def signin(request: web.Request) -> web.Response:
    await limit_by_address(request, "auth")
    form = validation.parse_signin(await read_body(request))
    async with request.app[DB_POOL].acquire() as conn:
        user = await users.find_by_email(conn, form.email)
    # Same answer, and the same hashing work, for an unknown email and a wrong password.
    matches = await request.app[PASSWORDS].verify(
        user.password_hash if user else None, form.password
    )
    if user is None or not matches:
        raise Unauthorized(BAD_CREDENTIALS)
    settings = request.app[SETTINGS]
    name = plain_name(user.name)  # names stored before the rule go out as plain text
    token = issue_token(
        Identity(user_id=user.id, name=name),
        settings.common.jwt_secret.value,
        settings.jwt_ttl_seconds,
    )
    return json_response({"token": token, "userId": user.id, "name": name})


async def me(request: web.Request) -> web.Response:
    identity = authenticate(request)
    async with request.app[DB_POOL].acquire() as conn:
        user = await users.find_by_id(conn, identity.user_id)
    if user is None:  # deleted since the token was issued: the token is worth nothing
        raise Unauthorized(ACCOUNT_GONE)
    return json_response(current_user(user))


def current_user(user: users.User) -> dict[str, object]:
    """The account as its owner sees it (`GET /users/me`, `PATCH /users/me`)."""
    return {
        "name": plain_name(user.name),
        "email": user.email,
        "user_id": user.id,
        "sendReceipts": user.send_receipts,
    }


async def delete_me(request: web.Request) -> web.Response:
    """Delete the token's account after re-checking its password; 204.

    Every gateway is told first (a revocation mark and a broadcast in Redis) so the
    account's sockets are dropped and refused; while Redis is unreachable nothing is
    deleted (503), so a deletion that succeeded was always announced. The API itself
    refuses the account's tokens because every authenticated query joins the account.
    """
    identity = authenticate(request)
    await limit_by_address(request, "auth")  # a password check: as guessable as sign-in
    password = validation.parse_password_confirmation(await read_body(request))
    async with request.app[DB_POOL].acquire() as conn:
        user = await users.find_by_id(conn, identity.user_id)
    if user is None:
        raise Unauthorized(ACCOUNT_GONE)
    if not await request.app[PASSWORDS].verify(user.password_hash, password):
        raise Forbidden("Incorrect password", fields={"password": "does not match this account"})
    await _announce_revocation(request, user.id)
    async with request.app[DB_POOL].acquire() as conn:
        await users.delete_user(conn, user.id)
    log.info("account deleted", extra={"user_id": user.id})
    return web.Response(status=204)


async def _announce_revocation(request: web.Request, user_id: str) -> None:
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(REVOCATION_TIMEOUT_SECONDS):
            await revoke_user(
                request.app[REDIS],
                settings.common.redis_keys,
                user_id,
                # A token may claim an `iat` up to CLOCK_SKEW_SECONDS ahead: the mark
                # must outlive the last one that could still be valid.
                settings.common.jwt_max_lifetime_seconds + CLOCK_SKEW_SECONDS,
            )
    except (redis.exceptions.RedisError, OSError, TimeoutError):
        log.warning("account deletion refused: Redis unreachable", extra={"user_id": user_id})
        raise Unavailable(
            "Account deletion is unavailable right now; nothing was deleted, try again later",
            retry_after=REVOCATION_RETRY_AFTER_SECONDS,
        ) from None
