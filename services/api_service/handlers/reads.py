"""Read markers, read receipts and the switch that hides one's own (docs/ROOM_STATE.md).

A marker moves forward only, in one statement (db/reads.py), and takes neither the
message-order lock nor an id of the order: it is ephemeral state, announced to the
gateways after its commit (read_notices.py), never replayed. The unread counts of
`GET /rooms` are computed in handlers/rooms.py from the same rows.

Who may set or see a marker follows the room rules (handlers/rooms.py): a room that is
not a UUID, does not exist, or is private or direct without the caller answers 404;
a public room the caller is not in answers 403 `not_member`.
"""

from __future__ import annotations

from aiohttp import web

from services.api_service import validation
from services.api_service.db import reads, users
from services.api_service.db import rooms as db_rooms
from services.api_service.errors import Unauthorized, Unprocessable
from services.api_service.handlers.common import authenticate, limit_by_user, read_body
from services.api_service.handlers.rooms import ACCOUNT_GONE, check_member, room_param
from services.api_service.handlers.users import current_user
from services.api_service.keys import DB_POOL, READ_NOTICES
from services.api_service.models import RECEIPTS_MAX
from services.shared.read_state import ReadNotice
from services.shared.web import json_response

NOT_A_MESSAGE_HERE = "not a message of this room"


async def mark_read(request: web.Request) -> web.Response:
    """`PUT /rooms/{room}/read`: move the caller's marker forward; 204 whether it moved or not.

    A marker that moved is announced: `readUpdated` to the caller's sockets, and a
    receipt to the room when the room shows receipts and the caller sends them.
    """
    identity = authenticate(request)
    room_id = room_param(request)
    await limit_by_user(request, "read_markers", identity)
    last_read = int(validation.parse_read_marker(await read_body(request)).lastRead)
    async with request.app[DB_POOL].acquire() as conn:
        target = await reads.read_target(conn, identity.user_id, room_id, last_read)
        if target is None:
            raise Unauthorized(ACCOUNT_GONE)
        room = check_member(target.room, target.role)
        if not target.is_message:
            raise Unprocessable(
                f"invalid input (lastRead: {NOT_A_MESSAGE_HERE})",
                fields={"lastRead": NOT_A_MESSAGE_HERE},
            )
        moved = await reads.advance_marker(conn, identity.user_id, room.id, last_read)
    if moved:
        receipt = room.shows_receipts and target.send_receipts
        notice = ReadNotice(identity.user_id, room.id, last_read, receipt)
        await request.app[READ_NOTICES].publish(notice)
    return web.Response(status=204)


async def list_receipts(request: web.Request) -> web.Response:
    """`GET /rooms/{room}/receipts`: how far the others have read (empty: receipts are off)."""
    identity = authenticate(request)
    room_id = room_param(request)
    async with request.app[DB_POOL].acquire() as conn:
        role = await db_rooms.role_of(conn, room_id, identity.user_id)
        room = check_member(await db_rooms.room(conn, room_id), role)
        found = (
            await reads.receipts(conn, room.id, identity.user_id, RECEIPTS_MAX)
            if room.shows_receipts
            else []
        )
    return json_response({"receipts": [receipt.wire() for receipt in found]})


async def update_me(request: web.Request) -> web.Response:
    """`PATCH /users/me` `{"sendReceipts"}`: the account as changed."""
    identity = authenticate(request)
    form = validation.parse_user_changes(await read_body(request))
    async with request.app[DB_POOL].acquire() as conn:
        user = await users.set_send_receipts(conn, identity.user_id, form.sendReceipts)
    if user is None:
        raise Unauthorized(ACCOUNT_GONE)
    return json_response(current_user(user))
