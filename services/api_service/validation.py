"""Parsing request input with the models of models.py into typed values.

Each parser takes the raw body (bytes, validated by pydantic straight from JSON) or an
already parsed object, and returns a model or raises ValidationFailed naming every bad
field with the sentence the API has always sent, so handlers never touch unchecked
input and error bodies keep their shape.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import orjson
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError
from pydantic_core import ErrorDetails

from services.api_service.emoji import MAX_EMOJI_BYTES, is_one_emoji
from services.api_service.errors import NotFound, Unprocessable, ValidationFailed
from services.api_service.models import (
    EMAIL_MAX,
    MESSAGE_ID_PATTERN,
    NAME_MAX,
    NAME_MIN,
    PASSWORD_MAX,
    PASSWORD_MIN,
    MessageEdit,
    NewMember,
    NewMessage,
    NewRoom,
    NewRoomMessage,
    PageQuery,
    PasswordConfirmation,
    Problem,
    PublicRoomsQuery,
    ReadMarker,
    RoleChange,
    RoomChanges,
    SignInRequest,
    SignUpRequest,
    UserChanges,
    UserRef,
    UserSearchQuery,
    history_query_model,
    message_edit_model,
    new_message_model,
    new_room_message_model,
    new_room_model,
    room_changes_model,
    sanitize_text,
)
from services.shared.names import name_problem

__all__ = [
    "EMAIL_MAX",
    "NAME_MAX",
    "NAME_MIN",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "HistoryQuery",
    "parse",
    "parse_history_query",
    "parse_message",
    "parse_password_confirmation",
    "parse_signin",
    "parse_signup",
    "sanitize_text",
]

M = TypeVar("M", bound=BaseModel)
NOT_A_STRING = frozenset({"missing", "string_type", "uuid_type"})
# Errors raised by models.py's own validators: their message is the sentence to send.
OWN_ERRORS = frozenset({"nul_character", "empty_after_sanitizing"})


@dataclass(frozen=True)
class HistoryQuery:
    limit: int
    before: int | None
    after: int | None


def parse(model: type[M], body: bytes | Any) -> M:
    """`body` (raw JSON bytes, or a parsed value) as `model`, or ValidationFailed."""
    try:
        if isinstance(body, bytes):
            if not body:
                raise ValidationFailed("request body must be a JSON object")
            return model.model_validate_json(body)
        return model.model_validate(body)
    except PydanticError as exc:
        raise _failure(model, exc) from None


def _failure(model: type[BaseModel], exc: PydanticError) -> ValidationFailed:
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        if not error["loc"]:  # the body as a whole
            if error["type"] == "json_invalid":
                return ValidationFailed("request body is not valid JSON")
            return ValidationFailed("request body must be a JSON object")
        field = str(error["loc"][0])
        errors.setdefault(field, _problem(model, field, error))
    summary = "; ".join(f"{field}: {problem}" for field, problem in errors.items())
    return ValidationFailed(f"invalid input ({summary})", fields=errors)


def _problem(model: type[BaseModel], field: str, error: ErrorDetails) -> str:
    """The sentence for one bad field: the field's `Problem`, else pydantic's own words."""
    if error["type"] in NOT_A_STRING:
        return "required string"
    if error["type"] in OWN_ERRORS:
        return error["msg"]
    info = model.model_fields.get(field)
    problem = next((m for m in info.metadata if isinstance(m, Problem)), None) if info else None
    return problem.text(error["type"]) if problem else error["msg"]


def parse_signup(body: bytes | Any) -> SignUpRequest:
    form = parse(SignUpRequest, body)
    problem = name_problem(form.name)
    if problem is not None:  # a well-formed request whose name is not plain text
        raise Unprocessable(f"invalid name ({problem})", fields={"name": problem})
    return form


def parse_signin(body: bytes | Any) -> SignInRequest:
    return parse(SignInRequest, body)


def parse_password_confirmation(body: bytes | Any) -> str:
    """The `password` that confirms a destructive request (`DELETE /users/me`)."""
    return parse(PasswordConfirmation, body).password


def parse_message(body: bytes | Any, max_chars: int) -> NewMessage:
    """A posted message with sanitized `text`; `owner` and `userName` in the body are ignored."""
    return parse(new_message_model(max_chars), body)


def parse_room_message(body: bytes | Any, max_chars: int) -> NewRoomMessage:
    """A message posted to a room: as `parse_message`, plus the `replyTo` of a reply."""
    return parse(new_room_message_model(max_chars), body)


def parse_message_edit(body: bytes | Any, max_chars: int) -> MessageEdit:
    """The new text of an edited message, sanitized exactly as a posted one."""
    return parse(message_edit_model(max_chars), body)


def parse_history_query(
    query: Mapping[str, str], default_limit: int, max_limit: int
) -> HistoryQuery:
    # dict() of a MultiDict keeps a repeated parameter's first value, as .get() does.
    parsed = parse(history_query_model(default_limit, max_limit), dict(query))
    return HistoryQuery(
        limit=parsed.limit,
        before=None if parsed.before is None else int(parsed.before),
        after=None if parsed.after is None else int(parsed.after),
    )


# ---- rooms ----------------------------------------------------------------------------------


def path_uuid(value: str, what: str = "Room") -> str:
    """A UUID from the path in canonical form; anything else is a resource that is not there."""
    try:
        return str(UUID(value))
    except ValueError:
        raise NotFound(f"{what} not found") from None


def path_message_id(value: str) -> int:
    """A message `_id` from the path; anything else is a message that is not there."""
    if not re.fullmatch(MESSAGE_ID_PATTERN, value):
        raise NotFound("Message not found")
    return int(value)


EMOJI_PROBLEM = f"must be one emoji (at most {MAX_EMOJI_BYTES} bytes)"


def path_emoji(value: str) -> str:
    """The emoji of a reaction route (URL-decoded by the router), or 422."""
    if not is_one_emoji(value):
        raise Unprocessable(
            f"invalid reaction (emoji: {EMOJI_PROBLEM})", fields={"emoji": EMOJI_PROBLEM}
        )
    return value


def _plain_text_problem(value: str, max_chars: int, *, required: bool) -> str | None:
    if required and not value:
        return "must not be empty"
    if len(value) > max_chars:
        return f"must be at most {max_chars} characters"
    return name_problem(value)


def _check_room_text(fields: dict[str, tuple[str | None, int, bool]]) -> None:
    """422 naming each room name or topic that is too long, empty or not plain text."""
    problems = {}
    for field, (value, max_chars, required) in fields.items():
        if value is None:
            continue
        problem = _plain_text_problem(value, max_chars, required=required)
        if problem is not None:
            problems[field] = problem
    if problems:
        summary = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        raise Unprocessable(f"invalid room ({summary})", fields=problems)


def parse_new_room(body: bytes | Any, name_max: int, topic_max: int) -> NewRoom:
    form = parse(new_room_model(name_max, topic_max), body)
    _check_room_text({"name": (form.name, name_max, True), "topic": (form.topic, topic_max, False)})
    return form


def parse_room_changes(body: bytes | Any, name_max: int, topic_max: int) -> RoomChanges:
    form = parse(room_changes_model(name_max, topic_max), body)
    if all(value is None for value in (form.name, form.topic, form.archived, form.receipts)):
        raise ValidationFailed("nothing to change: send name, topic, archived or receipts")
    _check_room_text({"name": (form.name, name_max, True), "topic": (form.topic, topic_max, False)})
    return form


def parse_user_ref(body: bytes | Any) -> str:
    return str(parse(UserRef, body).userId)


def parse_new_member(body: bytes | Any) -> NewMember:
    return parse(NewMember, body)


def parse_role_change(body: bytes | Any) -> str:
    return parse(RoleChange, body).role


def parse_public_rooms_query(query: Mapping[str, str]) -> PublicRoomsQuery:
    return parse(PublicRoomsQuery, dict(query))


def parse_page_query(query: Mapping[str, str]) -> PageQuery:
    return parse(PageQuery, dict(query))


def parse_user_search(query: Mapping[str, str]) -> UserSearchQuery:
    form = parse(UserSearchQuery, dict(query))
    if (form.email is None) == (form.name is None):
        raise ValidationFailed(
            "send either email or name",
            fields={"email": "send either email or name", "name": "send either email or name"},
        )
    return form


def parse_read_marker(body: bytes | Any) -> ReadMarker:
    return parse(ReadMarker, body)


def parse_user_changes(body: bytes | Any) -> UserChanges:
    return parse(UserChanges, body)


CURSOR_PROBLEM = "must be the `next` of a previous page"


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        f"invalid input (cursor: {CURSOR_PROBLEM})", fields={"cursor": CURSOR_PROBLEM}
    )


def cursor_uuid(value: str) -> str:
    """The user or room id of a decoded cursor; a cursor that holds none is a bad cursor."""
    try:
        return str(UUID(value))
    except ValueError:
        raise _bad_cursor() from None


def encode_cursor(position: list[Any]) -> str:
    """An opaque page cursor: the sort key of the last row of a page."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The sort key in `cursor`, whose items have the types of `shape`; else 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = orjson.loads(raw)
    except (binascii.Error, ValueError):
        position = None
    if (
        not isinstance(position, list)
        or len(position) != len(shape)
        or not all(_cursor_item(v, t) for v, t in zip(position, shape, strict=True))
    ):
        raise _bad_cursor()
    return position


def _cursor_item(value: Any, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    if isinstance(value, int):
        return -(2**31) <= value < 2**31
    return not (isinstance(value, str) and "\x00" in value)
