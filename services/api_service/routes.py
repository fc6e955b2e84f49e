"""The API's route table: one declaration per route, the router and OpenAPI both read it.

A `Route` says what the route is (method, path, handler), what it takes (body and query
models from models.py, whether it needs a token) and every status it can answer, each
with its body's model. `register` adds the table to the aiohttp router and openapi.py
builds the document from it, so a route cannot be served undocumented or documented
with statuses it never answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from services.api_service import models
from services.api_service.settings import ApiSettings

JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """One status of a route: its JSON body's model, or another media type, or no body."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str | None = None  # a body that is not JSON (a string of this type)
    example: Any = None  # else the model's first example
    retry_after: bool = False
    name: str | None = None  # shared replies are listed once under components.responses


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation_id: str
    tag: str
    summary: str
    replies: Mapping[int, Reply]
    auth: bool = False
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    description: str = ""


def register(app: web.Application, table: list[Route]) -> None:
    app.add_routes([web.route(route.method, route.path, route.handler) for route in table])


def rate_text(what: str, per_minute: int, scope: str) -> str:
    if per_minute <= 0:
        return f"{what}: no rate limit"
    return f"{what}: {per_minute} requests per minute {scope} (429 with Retry-After above)"


def _error(
    name: str,
    description: str,
    message: str,
    code: str,
    *,
    retry_after: bool = False,
    fields: dict[str, str] | None = None,
) -> Reply:
    example: dict[str, Any] = {"message": message, "code": code}
    if fields:
        example["fields"] = fields
    return Reply(description, models.Error, example=example, retry_after=retry_after, name=name)


BAD_REQUEST = _error(
    "BadRequest",
    "Invalid input: malformed JSON, a body that is not an object, or a bad field (see `fields`).",
    "invalid input (email: must be a valid email address)",
    "validation_failed",
    fields={"email": "must be a valid email address"},
)
UNAUTHORIZED = _error(
    "Unauthorized",
    "Missing, malformed, forged or expired token, or one whose account was deleted; "
    "or wrong credentials at sign-in.",
    "Unauthorized: token expired",
    "unauthorized",
)
WRONG_PASSWORD = _error(
    "WrongPassword",
    "The password does not match the token's account.",
    "Incorrect password",
    "forbidden",
    fields={"password": "does not match this account"},
)
BODY_TIMEOUT = _error(
    "RequestTimeout",
    "The body did not arrive within the deadline (REQUEST_BODY_TIMEOUT_SECONDS); "
    "the connection is closed.",
    "request body not received within 10 s",
    "request_timeout",
)
CONFLICT = _error(
    "Conflict", "The email is taken.", "A user with this email already exists", "conflict"
)
ID_IN_USE = _error(
    "IdInUse",
    "The client `id` was already used, by the same author, for a message in another room "
    "(client ids are one idempotency key per message across all rooms): send a new id.",
    "This id was used for a message in another room; send a new id",
    "id_in_use",
)
NOT_PLAIN_TEXT = _error(
    "NotPlainText",
    "The display name is not plain text: it contains `<`, `>`, control characters or "
    "invisible formatting characters.",
    "invalid name (must not contain < or >)",
    "unprocessable",
    fields={"name": "must not contain < or >"},
)
RATE_LIMITED = _error(
    "TooManyRequests",
    "Rate limited: retry after the number of seconds in `Retry-After`.",
    "Too many requests, slow down",
    "rate_limited",
    retry_after=True,
)
BUSY = _error(
    "Busy",
    "The process is at a bound it keeps to stay responsive (password hashing or history "
    "reads); nothing changed. Retry after `Retry-After` seconds.",
    "Too many requests at once, try again shortly",
    "busy",
    retry_after=True,
)
UNAVAILABLE = _error(
    "ServiceUnavailable",
    "A service this request needs is unreachable, or the process is busy "
    "(`code` `unavailable` or `busy`); nothing changed. Retry after `Retry-After` seconds.",
    "Account deletion is unavailable right now; nothing was deleted, try again later",
    "unavailable",
    retry_after=True,
)


def too_large(settings: ApiSettings) -> Reply:
    return _error(
        "PayloadTooLarge",
        f"The body is larger than {settings.max_body_bytes} bytes.",
        "Request Entity Too Large",
        "request_entity_too_large",
    )


def with_body(settings: ApiSettings) -> dict[int, Reply]:
    """What every route that reads a body may answer besides its own statuses."""
    return {400: BAD_REQUEST, 408: BODY_TIMEOUT, 413: too_large(settings)}


# ---- rooms (docs/ROOMS.md) ------------------------------------------------------------------

ROOM_NOT_FOUND = _error(
    "RoomNotFound",
    "No such room for the caller: the id is not a UUID, the room does not exist, or it is a "
    "private or direct room the caller is not a member of (the same answer for all three).",
    "Room not found",
    "not_found",
)
MEMBER_NOT_FOUND = _error(
    "MemberNotFound",
    "No such room for the caller (as `RoomNotFound`), or the user is not a member of it.",
    "Member not found",
    "not_found",
)
NOT_MEMBER = _error(
    "NotMember",
    "A public room the caller is not a member of (`code` `not_member`).",
    "You are not a member of this room",
    "not_member",
)
ROLE_FORBIDDEN = _error(
    "RoleForbidden",
    "The caller is not a member of this public room (`not_member`), or their role does not "
    "allow the action (`forbidden`; see the roles table of docs/ROOMS.md).",
    "Your role in this room does not allow you to remove members",
    "forbidden",
)
ROOM_CONFLICT = _error(
    "RoomConflict",
    "The room's state or a limit refuses the change; `code` says which: `global_room`, "
    "`direct_room` (fixed members), `archived`, `room_full`, `too_many_rooms`, "
    "`owner_must_transfer`, `owner_role`.",
    "The room is full (50000 members at most)",
    "room_full",
)
ROOM_NOT_PLAIN_TEXT = _error(
    "InvalidRoomInput",
    "Well-formed input the room refuses: a name or topic that is empty, too long or not plain "
    "text, or a user id that is nobody (or not a member, for a transfer); see `fields`.",
    "invalid room (name: must not contain < or >)",
    "unprocessable",
    fields={"name": "must not contain < or >"},
)
ARCHIVED = _error(
    "RoomArchived",
    "The room is archived (`code` `archived`): its history stays, nothing new is posted.",
    "The room is archived",
    "archived",
)

# ---- edits, deletions, replies and reactions (docs/ROOM_STATE.md) ----------------------------

MESSAGE_NOT_FOUND = _error(
    "MessageNotFound",
    "No such room for the caller (as `RoomNotFound`), or no message with this `_id` in it.",
    "Message not found",
    "not_found",
)
MESSAGE_FORBIDDEN = _error(
    "MessageForbidden",
    "The caller is not a member of this public room (`not_member`), or may not make this "
    "change (`forbidden`): only the author edits; the author or the room's owner and admins "
    "delete (in the global room, the author only).",
    "Only its author can edit a message",
    "forbidden",
)
MESSAGE_CONFLICT = _error(
    "MessageConflict",
    "The message or its room refuses the change; `code` says which: `deleted` (a tombstone "
    "is not edited, replied to or reacted to), `archived`, `too_many_reactions`.",
    "The message was deleted",
    "deleted",
)
BAD_REACTION = _error(
    "InvalidReaction",
    "The emoji is not exactly one emoji of at most 16 bytes.",
    "invalid reaction (emoji: must be one emoji (at most 16 bytes))",
    "unprocessable",
    fields={"emoji": "must be one emoji (at most 16 bytes)"},
)
BAD_REPLY = _error(
    "InvalidReply",
    "`replyTo` is not the `_id` of a message of this room.",
    "invalid input (replyTo: must be the _id of a message of this room)",
    "unprocessable",
    fields={"replyTo": "must be the _id of a message of this room"},
)
POST_CONFLICT = _error(
    "PostConflict",
    "The room is archived (`archived`), the message this one replies to was deleted "
    "(`deleted`), or the client `id` was already used for a message in another room "
    "(`id_in_use`).",
    "The room is archived",
    "archived",
)
NOT_ROOM_MESSAGE = _error(
    "NotARoomMessage",
    "`lastRead` is well-formed but not the `_id` of a message of this room.",
    "invalid input (lastRead: not a message of this room)",
    "unprocessable",
    fields={"lastRead": "not a message of this room"},
)
