"""Message history and posting."""

from __future__ import annotations

import logging
import os

from aiohttp import web

from services.api_service import validation
from services.api_service.db import messages
from services.api_service.errors import Unauthorized
from services.api_service.handlers.common import (
    authenticate,
    check_same_room,
    limit_by_user,
    read_body,
)
from services.api_service.keys import DB_POOL, MESSAGE_WRITER, SETTINGS
from services.shared.rooms import GLOBAL_ROOM_ID
from services.shared.web import json_response

log = logging.getLogger(__name__)


ACCOUNT_GONE = "Unauthorized: user no longer exists"


async def list_messages(request: web.Request) -> web.Response:
    identity = authenticate(request)
    settings = request.app[SETTINGS]
    query = validation.parse_history_query(
        request.query, settings.history_default_limit, settings.history_max_limit
    )
    await limit_by_user(request, "history", authenticate(request), cost=query.limit)
    async with request.app[DB_POOL].acquire() as conn:
        page = await messages.history_page(
            conn, identity.user_id, limit=query.limit, before=query.before, after=query.after
        )
    if page is None:  # the account was deleted since the token was issued
        raise Unauthorized(ACCOUNT_GONE)
    return json_response(page)


async def post_message(request: web.Request) -> web.Response:
    """Store a message as the token's user; the relay publishes it once committed.

    A retry with the same client `id` answers 200 with the stored message and does not
    publish again, so a client may safely resend after a timeout.
    """
    identity = authenticate(request)
    await limit_by_user(request, "messages", identity)
    form = validation.parse_message(
        await read_body(request), request.app[SETTINGS].message_max_chars
    )
    new = messages.NewMessage(
        client_id=str(form.id), owner=identity.user_id, user_name=identity.name, text=form.text
    )
    try:
        result = await request.app[MESSAGE_WRITER].insert(new)
    except messages.OwnerMissing:  # the account was deleted since the token was issued
        raise Unauthorized(ACCOUNT_GONE) from None
    check_same_room(result, GLOBAL_ROOM_ID)
    if result.created:
        _failpoint_after_commit(request, result.message.id)
    return json_response(result.message.to_wire(), status=201 if result.created else 200)


def _failpoint_after_commit(request: web.Request, message_id: int) -> None:
    """`CHAT_FAILPOINT=crash_after_commit` kills the process between commit and publish.

    Only the fault-injection suite sets it: it proves a message committed by a process
    that dies before publishing still reaches every client.
    """
    if request.app[SETTINGS].failpoint == "crash_after_commit":
        log.error("failpoint crash_after_commit: exiting", extra={"message_id": message_id})
        os._exit(70)
