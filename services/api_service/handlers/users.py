"""Sign-up, sign-in and the current user."""

from __future__ import annotations

from aiohttp import web

from services.api_service import validation
from services.api_service.db import users
from services.api_service.errors import Conflict, NotFound, Unauthorized
from services.api_service.handlers.common import authenticate, limit_by_address, read_json
from services.api_service.keys import DB_POOL, PASSWORDS, SETTINGS
from services.shared.auth import Identity, issue_token
from services.shared.web import json_response

BAD_CREDENTIALS = "Incorrect email or password"


async def signup(request: web.Request) -> web.Response:
    await limit_by_address(request, "auth")
    form = validation.parse_signup(await read_json(request))
    password_hash = await request.app[PASSWORDS].hash(form.password)
    async with request.app[DB_POOL].acquire() as conn:
        try:
            user = await users.create_user(conn, form.name, form.email, password_hash)
        except users.EmailTaken:
            raise Conflict("A user with this email already exists") from None
    return json_response(user.public(), status=201)


async def signin(request: web.Request) -> web.Response:
    await limit_by_address(request, "auth")
    form = validation.parse_signin(await read_json(request))
    async with request.app[DB_POOL].acquire() as conn:
        user = await users.find_by_email(conn, form.email)
    # Same answer, and the same hashing work, for an unknown email and a wrong password.
    matches = await request.app[PASSWORDS].verify(user.password_hash if user else None, form.password)
    if user is None or not matches:
        raise Unauthorized(BAD_CREDENTIALS)
    settings = request.app[SETTINGS]
    token = issue_token(
        Identity(user_id=user.id, name=user.name), settings.common.jwt_secret.value, settings.jwt_ttl_seconds
    )
    return json_response({"token": token, "userId": user.id, "name": user.name})


async def me(request: web.Request) -> web.Response:
    identity = authenticate(request)
    async with request.app[DB_POOL].acquire() as conn:
        user = await users.find_by_id(conn, identity.user_id)
    if user is None:
        raise NotFound("User no longer exists")
    return json_response({"name": user.name, "email": user.email, "user_id": user.id})
