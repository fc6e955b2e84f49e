"""Message history and posting."""

from __future__ import annotations

import logging

from aiohttp import web

from services.api_service import validation
from services.api_service.db import messages
from services.api_service.handlers.common import authenticate, read_json
from services.api_service.keys import DB_POOL, PUBLISHER, SETTINGS
from services.shared.web import json_response

log = logging.getLogger(__name__)


async def list_messages(request: web.Request) -> web.Response:
    authenticate(request)
    settings = request.app[SETTINGS]
    query = validation.parse_history_query(
        request.query, settings.history_default_limit, settings.history_max_limit
    )
    async with request.app[DB_POOL].acquire() as conn:
        page = await messages.history_page(conn, limit=query.limit, before=query.before, after=query.after)
    return json_response([message.to_wire() for message in page])


async def post_message(request: web.Request) -> web.Response:
    """Store a message as the token's user; publish it once it is committed.

    A retry with the same client `id` answers 200 with the stored message and does not
    publish again, so a client may safely resend after a timeout.
    """
    identity = authenticate(request)
    form = validation.parse_message(await read_json(request), request.app[SETTINGS].message_max_chars)
    new = messages.NewMessage(
        client_id=form.client_id, owner=identity.user_id, user_name=identity.name, text=form.text
    )
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        result = await messages.insert_message(conn, new)
    if result.created:
        await request.app[PUBLISHER].publish(result.message)
    return json_response(result.message.to_wire(), status=201 if result.created else 200)
