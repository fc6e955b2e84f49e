"""Every request and response body of the REST API, declared once as pydantic models.

The handlers validate input with these models (validation.py) and the OpenAPI document
is generated from them (openapi.py), so a limit or a field cannot differ between the
code and its reference. Responses are still encoded from plain dicts with orjson (the
fast path); the models describe them, and tests check the wire format against them.

A field's `Problem` is the sentence that goes into an error's `fields` when its value
breaks a constraint; a value of the wrong type or a missing one is "required string".
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal
from uuid import UUID

import nh3
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    StringConstraints,
    create_model,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

NAME_MIN, NAME_MAX = 2, 30
PASSWORD_MIN, PASSWORD_MAX = 8, 256
EMAIL_MAX = 254
# Deliberately loose: the only real check of an address is mail reaching it.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MESSAGE_ID_PATTERN = "^[0-9]{1,18}$"  # a message `_id`: ASCII digits, fits a bigint

# What message text may keep. The client renders text as HTML, so the allow-list is
# inline formatting, lists, quotes, code and links; nothing that loads a resource when
# the message is shown (no <img>: an external image is a tracking pixel that tells its
# owner who read the chat, from which address, and when).
MESSAGE_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "s",
        "del",
        "ins",
        "mark",
        "small",
        "sub",
        "sup",
        "code",
        "kbd",
        "pre",
        "br",
        "p",
        "blockquote",
        "ul",
        "ol",
        "li",
        "span",
    }
)
MESSAGE_ATTRIBUTES = {"a": {"href"}}
MESSAGE_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

EXAMPLE_USER_ID = "0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c"
EXAMPLE_MESSAGE: dict[str, Any] = {
    "_id": "1043",
    "id": "5d3c8a52-3a8e-4c8b-9a51-6f2d1d3e7b90",
    "owner": EXAMPLE_USER_ID,
    "userName": "Ann",
    "text": "Hello <b>world</b>",
    "createdAt": "2025-01-31T12:34:56.789012+00:00",
}


class Problem:
    """The `fields` sentence for a broken constraint (`by_type`: per pydantic error type)."""

    def __init__(self, default: str, **by_type: str) -> None:
        self.default = default
        self.by_type = by_type

    def text(self, error_type: str) -> str:
        return self.by_type.get(error_type, self.default)


def sanitize_text(text: str) -> str:
    """Make message text safe to render as HTML (the existing client does exactly that).

    nh3 keeps the tags of MESSAGE_TAGS and drops everything else: scripts, event
    handlers, styles, dangerous URLs and anything that loads a resource by itself.
    """
    return nh3.clean(
        text,
        tags=set(MESSAGE_TAGS),
        attributes={tag: set(names) for tag, names in MESSAGE_ATTRIBUTES.items()},
        url_schemes=set(MESSAGE_URL_SCHEMES),
        link_rel=LINK_REL,
    ).strip()


def mention_text(name: str) -> str:
    """`@<name>` as it appears in a stored message: sanitized like the message itself.

    (A name may hold characters the sanitizer escapes, such as `&`.)
    """
    return sanitize_text(f"@{name}")


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:  # PostgreSQL text cannot store NUL
        raise PydanticCustomError("nul_character", "must not contain NUL characters")
    return value


def _sanitized(text: str) -> str:
    clean = sanitize_text(text)
    if not clean:
        raise PydanticCustomError("empty_after_sanitizing", "must not be empty")
    return clean


def _ascii_integer(digits: int) -> Any:
    """A query value of at most `digits` ASCII digits as an int (no sign, spaces or `_`).

    The length first: int() of thousands of digits raises (and costs quadratic time).
    """

    def check(value: Any) -> Any:
        if isinstance(value, str) and not (
            len(value) <= digits and value.isascii() and value.isdigit()
        ):
            raise PydanticCustomError("not_a_count", "not a count")
        return value

    return BeforeValidator(check)


# Constraints go before NUL_FREE so that they stay inside pydantic's string check.
NUL_FREE = BeforeValidator(_no_nul)
Uuid = Annotated[UUID, NUL_FREE, Problem("must be a UUID")]
Secret = Annotated[str, StringConstraints(min_length=1), NUL_FREE, Problem("required")]


class _Body(BaseModel):
    """A request body: unknown fields are ignored, as they always were."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


class SignUpRequest(_Body):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=NAME_MIN, max_length=NAME_MAX),
        NUL_FREE,
        Problem(f"must be {NAME_MIN} to {NAME_MAX} characters"),
        Field(
            description=(
                f"Display name, {NAME_MIN} to {NAME_MAX} characters after trimming; plain text: "
                "no `<`, `>`, control or invisible formatting characters (422 otherwise)."
            )
        ),
    ]
    email: Annotated[
        str,
        StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX, pattern=EMAIL_PATTERN),
        NUL_FREE,
        Problem("must be a valid email address"),
        Field(json_schema_extra={"format": "email"}),
    ]
    password: Annotated[
        str,
        StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX),
        NUL_FREE,
        Problem(f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
    ]
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Ann", "email": "ann@example.com", "password": "correct horse battery"}
            ]
        }
    )


class SignInRequest(_Body):
    email: Annotated[str, StringConstraints(strip_whitespace=True), NUL_FREE]
    password: Secret
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ann@example.com", "password": "correct horse battery"}]
        }
    )


class PasswordConfirmation(_Body):
    password: Secret
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"password": "correct horse battery"}]}
    )


class NewMessage(_Body):
    """The body of `POST /messages` (`text`'s limit is a setting: see `new_message_model`)."""

    id: Annotated[Uuid, Field(description="Chosen by the client; makes retries safe.")]
    text: str
    model_config = ConfigDict(json_schema_extra=lambda schema: _ignored_author(schema))


def _ignored_author(schema: dict[str, Any]) -> None:
    """Document `owner` and `userName`, which clients send and the model drops (never trusted)."""
    ignored = {"description": "Ignored (the author comes from the token)."}
    schema["properties"].update(owner=ignored, userName=ignored)
    schema["examples"] = [{"id": EXAMPLE_MESSAGE["id"], "text": "Hello <b>world</b>"}]


def _message_text(max_chars: int) -> Any:
    """Message text: at most `max_chars` characters before sanitizing, not empty after."""
    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_chars),
        NUL_FREE,
        Problem(f"must be at most {max_chars} characters", string_too_short="must not be empty"),
        AfterValidator(_sanitized),
        Field(description="May contain HTML; unsafe markup is removed. Empty after that: 400."),
    ]


@cache
def new_message_model(max_chars: int) -> type[NewMessage]:
    """`NewMessage` whose `text` holds at most `max_chars` characters before sanitizing."""
    return create_model("NewMessage", __base__=NewMessage, text=(_message_text(max_chars), ...))


MessageIdText = Annotated[str, StringConstraints(pattern=MESSAGE_ID_PATTERN)]


class HistoryQuery(_Body):
    """The query of `GET /messages` (the page size's bounds are settings: `history_query_model`)."""

    limit: int
    before: Annotated[
        MessageIdText | SkipJsonSchema[None],
        Field(description="Only messages with a smaller `_id` (older).", examples=["1042"]),
        Problem("must be a message _id"),
    ] = None
    after: Annotated[
        MessageIdText | SkipJsonSchema[None],
        Field(description="Only messages with a greater `_id` (newer).", examples=["1000"]),
        Problem("must be a message _id"),
    ] = None


@cache
def history_query_model(default_limit: int, max_limit: int) -> type[HistoryQuery]:
    limit = Annotated[
        int,
        Field(ge=1, le=max_limit),
        _ascii_integer(len(str(max_limit))),
        Problem(f"must be an integer from 1 to {max_limit}"),
        Field(description=f"Page size (default {default_limit}).", examples=[50]),
    ]
    return create_model("HistoryQuery", __base__=HistoryQuery, limit=(limit, default_limit))


# ---- responses ------------------------------------------------------------------------------


class User(BaseModel):
    """A new account (never the password or its hash)."""

    id: UUID = Field(alias="_id")
    name: str
    email: str
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"_id": EXAMPLE_USER_ID, "name": "Ann", "email": "ann@example.com"}]
        }
    )


class Token(BaseModel):
    token: str = Field(description="A JWT for `Authorization: Bearer`.")
    userId: UUID
    name: str
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.signature",
                    "userId": EXAMPLE_USER_ID,
                    "name": "Ann",
                }
            ]
        }
    )


class CurrentUser(BaseModel):
    name: str
    email: str
    user_id: UUID
    sendReceipts: bool = Field(
        description="Whether other people see how far this user has read (read receipts)."
    )
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Ann",
                    "email": "ann@example.com",
                    "user_id": EXAMPLE_USER_ID,
                    "sendReceipts": True,
                }
            ]
        }
    )


class Message(BaseModel):
    """A stored message, as REST returns it and Socket.IO pushes it."""

    id_: str = Field(
        alias="_id",
        pattern="^[0-9]+$",
        description="Increases in the order messages become visible; use it to sort and page.",
    )
    id: UUID = Field(description="The client's id from the POST.")
    owner: UUID = Field(description="The author's user id.")
    userName: str = Field(description="The author's name when posting.")
    text: str = Field(description="Sanitized HTML.")
    createdAt: str = Field(json_schema_extra={"format": "date-time"})
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_MESSAGE]})


class MessageList(RootModel[list[Message]]):
    """A page of the history, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [[EXAMPLE_MESSAGE]]})


class Health(BaseModel):
    status: Literal["ok"]
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})


class Readiness(BaseModel):
    """Ready when PostgreSQL answers; Redis being down only degrades the API (still 200)."""

    status: Literal["ready", "unavailable"]
    postgres: Literal["ok", "unavailable"]
    redis: Literal["ok", "degraded"]
    pid: int = Field(
        description=(
            "The answering process, so a launcher can tell it from an older one on the port."
        )
    )
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "postgres": "ok", "redis": "ok", "pid": 4242}]
        }
    )


class Error(BaseModel):
    """Every error response."""

    message: str = Field(description="Human-readable; safe to show.")
    code: str = Field(description="Machine-readable, e.g. `validation_failed`.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="For invalid input: what is wrong with each field."
    )
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "invalid input (text: must not be empty)",
                    "code": "validation_failed",
                    "fields": {"text": "must not be empty"},
                }
            ]
        }
    )


class OpenApiDocument(BaseModel):
    """`GET /openapi.json`: this very document (only its top-level shape is checked)."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    model_config = ConfigDict(extra="allow")


# ---- rooms (docs/ROOMS.md) --------------------------------------------------------------------

EXAMPLE_ROOM_ID = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d"
EXAMPLE_PEER_ID = "2a7c9e10-5b3d-4f61-9e28-7d4c3b2a1f00"
SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT = 20, 100
NAME_PREFIX_MIN = 2
CURSOR_MAX = 512
RoomKind = Literal["public", "private", "direct"]
Role = Literal["owner", "admin", "member"]
GrantedRole = Literal["admin", "member"]
EXAMPLE_ROOM_MESSAGE: dict[str, Any] = {**EXAMPLE_MESSAGE, "room": EXAMPLE_ROOM_ID}
EXAMPLE_ROOM: dict[str, Any] = {
    "id": EXAMPLE_ROOM_ID,
    "kind": "private",
    "name": "Design",
    "topic": "Weekly review",
    "archived": False,
    "receipts": False,
    "createdAt": "2026-11-28T10:00:00.000000+00:00",
    "memberCount": 5,
    "role": "admin",
    "peer": None,
    "lastMessage": EXAMPLE_ROOM_MESSAGE,
}
CursorText = Annotated[str, StringConstraints(min_length=1, max_length=CURSOR_MAX), NUL_FREE]
UNREAD_CAP = 999  # unread messages are counted up to this many per room (db/reads.py)


PageLimit = Annotated[
    int,
    Field(ge=1, le=SEARCH_MAX_LIMIT),
    _ascii_integer(len(str(SEARCH_MAX_LIMIT))),
    Problem(f"must be an integer from 1 to {SEARCH_MAX_LIMIT}"),
    Field(description=f"Page size (default {SEARCH_DEFAULT_LIMIT}).", examples=[20]),
]


Absent = SkipJsonSchema[None]  # may be left out; the document does not offer null
Cursor = Annotated[
    CursorText | Absent,
    Problem("must be the `next` of a previous page"),
    Field(description="The `next` of the previous page (opaque)."),
]


def _plain_text(max_chars: int, what: str, *, required: bool, optional: bool = False) -> Any:
    """A room name or topic: trimmed; its length and plain-text rules answer 422 (validation.py).

    `optional`: the field may be left out (`PATCH`), which keeps it as it is.
    """
    bounds: dict[str, Any] = {"minLength": 1 if required else 0, "maxLength": max_chars}
    text: Any = Annotated[
        str,
        StringConstraints(strip_whitespace=True),
        NUL_FREE,
        Field(
            description=(
                f"{what}, up to {max_chars} characters after trimming; plain text: no `<`, `>`, "
                "control or invisible formatting characters (422 otherwise)."
            ),
            json_schema_extra=bounds,
        ),
    ]
    return text | Absent if optional else text


class NewRoom(_Body):
    """The body of `POST /rooms` (name and topic bounds are settings: `new_room_model`)."""

    kind: Annotated[Literal["public", "private"], Problem("must be public or private")]
    name: str
    topic: str = ""
    members: Annotated[
        list[Uuid],
        Problem("must be a list of user ids"),
        Field(description="People to add besides the creator (user ids)."),
    ] = []
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "private", "name": "Design", "topic": "", "members": [EXAMPLE_PEER_ID]}
            ]
        }
    )


@cache
def new_room_model(name_max: int, topic_max: int) -> type[NewRoom]:
    return create_model(
        "NewRoom",
        __base__=NewRoom,
        name=(_plain_text(name_max, "The room's name", required=True), ...),
        topic=(_plain_text(topic_max, "What the room is about", required=False), ""),
    )


class RoomChanges(_Body):
    """The body of `PATCH /rooms/{room}`: at least one field (bounds: `room_changes_model`)."""

    name: str | SkipJsonSchema[None] = None
    topic: str | SkipJsonSchema[None] = None
    archived: Annotated[bool | SkipJsonSchema[None], Problem("must be true or false")] = None
    receipts: Annotated[
        StrictBool | SkipJsonSchema[None],
        Problem("must be true or false"),
        Field(description="Show members how far the others have read (group rooms)."),
    ] = None
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Design", "topic": "Weekly review"}]}
    )


@cache
def room_changes_model(name_max: int, topic_max: int) -> type[RoomChanges]:
    name = _plain_text(name_max, "The new name", required=True, optional=True)
    topic = _plain_text(topic_max, "The new topic (empty: none)", required=False, optional=True)
    return create_model("RoomChanges", __base__=RoomChanges, name=(name, None), topic=(topic, None))


class UserRef(_Body):
    """`{"userId"}`: the person a room route is about."""

    userId: Uuid
    model_config = ConfigDict(json_schema_extra={"examples": [{"userId": EXAMPLE_PEER_ID}]})


class NewMember(UserRef):
    role: Annotated[GrantedRole, Problem("must be admin or member")] = "member"
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"userId": EXAMPLE_PEER_ID, "role": "member"}]}
    )


class RoleChange(_Body):
    role: Annotated[GrantedRole, Problem("must be admin or member")]
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})


SearchText = Annotated[str, StringConstraints(max_length=100), NUL_FREE]
EmailText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX), NUL_FREE]
NamePrefix = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=NAME_PREFIX_MIN, max_length=NAME_MAX),
    NUL_FREE,
]


class PublicRoomsQuery(_Body):
    q: Annotated[
        SearchText | Absent,
        Problem("must be at most 100 characters"),
        Field(
            description="Only rooms whose name contains this (case-insensitive).",
            examples=["design"],
        ),
    ] = None
    limit: PageLimit = SEARCH_DEFAULT_LIMIT
    cursor: Cursor = None


class PageQuery(_Body):
    """`limit` and `cursor` of a paginated list (the members of a room)."""

    limit: PageLimit = SEARCH_DEFAULT_LIMIT
    cursor: Cursor = None


class UserSearchQuery(_Body):
    email: Annotated[
        EmailText | Absent,
        Problem(f"must be at most {EMAIL_MAX} characters"),
        Field(description="The exact email (case-insensitive).", examples=["ann@example.com"]),
    ] = None
    name: Annotated[
        NamePrefix | Absent,
        Problem(f"must be {NAME_PREFIX_MIN} to {NAME_MAX} characters"),
        Field(description="The start of a name (case-insensitive).", examples=["An"]),
    ] = None
    limit: PageLimit = SEARCH_DEFAULT_LIMIT


class Person(BaseModel):
    """Someone as other people see them: never their email."""

    id: UUID
    name: str
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": EXAMPLE_PEER_ID, "name": "Bo"}]}
    )


class People(BaseModel):
    users: list[Person]
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"users": [{"id": EXAMPLE_PEER_ID, "name": "Bo"}]}]}
    )


class ReplyPreview(BaseModel):
    """What a reply shows of the message it answers (docs/ROOM_STATE.md, "Replies")."""

    id_: str = Field(alias="_id", pattern="^[0-9]+$", description="The quoted message's `_id`.")
    owner: UUID
    userName: str
    excerpt: str = Field(
        description=(
            "Plain text (show it as text, not HTML): the first 140 characters of the quoted "
            "message when the reply was posted; empty once the quoted message is deleted."
        )
    )


class Reaction(BaseModel):
    emoji: str
    count: int = Field(ge=1)
    users: list[UUID] = Field(description="The first 20 people who reacted with it.")


EXAMPLE_REPLY: dict[str, Any] = {
    "_id": "1040",
    "owner": EXAMPLE_PEER_ID,
    "userName": "Bo",
    "excerpt": "Shall we move the review to Friday?",
}


class RoomMessage(Message):
    """A message of a room: the legacy shape plus its room, and what happened to it since.

    `edited`, `replyTo` and `reactions` appear when they apply. A deleted message is a
    tombstone: `deleted` true, `text` empty, nothing else of its content.
    """

    room: UUID
    edited: Annotated[
        str | Absent,
        Field(
            description="When the text was last edited.", json_schema_extra={"format": "date-time"}
        ),
    ] = None
    deleted: Annotated[
        bool | Absent, Field(description="A tombstone: the message was deleted.")
    ] = None
    replyTo: Annotated[ReplyPreview | Absent, Field(description="The message it answers.")] = None
    reactions: Annotated[
        list[Reaction] | Absent, Field(description="Per emoji, in the order first used.")
    ] = None
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                EXAMPLE_ROOM_MESSAGE,
                {
                    **EXAMPLE_ROOM_MESSAGE,
                    "edited": "2025-01-31T12:40:00.000000+00:00",
                    "replyTo": EXAMPLE_REPLY,
                    "reactions": [
                        {"emoji": "👍", "count": 2, "users": [EXAMPLE_PEER_ID, EXAMPLE_USER_ID]}
                    ],
                },
            ]
        }
    )


class RoomMessageList(RootModel[list[RoomMessage]]):
    """A page of a room's history, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [[EXAMPLE_ROOM_MESSAGE]]})


class NewRoomMessage(NewMessage):
    """The body of `POST /rooms/{room}/messages`: a message, optionally a reply."""

    replyTo: Annotated[
        MessageIdText | Absent,
        Problem("must be a message _id"),
        Field(
            description=(
                "The `_id` of the message of this room it answers (422 otherwise; 409 "
                "`deleted` when that message was deleted)."
            ),
            examples=["1040"],
        ),
    ] = None
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": EXAMPLE_MESSAGE["id"], "text": "Friday works", "replyTo": "1040"}]
        }
    )


@cache
def new_room_message_model(max_chars: int) -> type[NewRoomMessage]:
    return create_model(
        "NewRoomMessage", __base__=NewRoomMessage, text=(_message_text(max_chars), ...)
    )


class MessageEdit(_Body):
    """The body of `PATCH /rooms/{room}/messages/{message}` (bounds: `message_edit_model`)."""

    text: str
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Hello <b>all</b>"}]})


@cache
def message_edit_model(max_chars: int) -> type[MessageEdit]:
    return create_model("MessageEdit", __base__=MessageEdit, text=(_message_text(max_chars), ...))


class Room(BaseModel):
    """A room as the caller sees it (docs/ROOMS.md)."""

    id: UUID
    kind: RoomKind
    name: str = Field(description="For a direct room: the other person's name.")
    topic: str
    archived: bool
    receipts: bool = Field(
        description="Members see how far the others have read: always in a direct room."
    )
    createdAt: str = Field(json_schema_extra={"format": "date-time"})
    memberCount: int = Field(ge=0)
    role: Role | None = Field(description="The caller's role; null: not a member (public rooms).")
    peer: Person | None = Field(description="For a direct room: the other person; else null.")
    lastMessage: RoomMessage | None = Field(
        default=None, description="The newest message (null: none); absent in the public list."
    )
    lastRead: MessageIdText | None = Field(
        default=None,
        description=(
            "`GET /rooms` only: the `_id` the caller has read up to (null: nothing read yet)."
        ),
    )
    unread: int = Field(
        default=0,
        ge=0,
        le=UNREAD_CAP,
        description=(
            f"`GET /rooms` only: messages by others after `lastRead`, counted up to {UNREAD_CAP}."
        ),
    )
    mentions: int = Field(
        default=0,
        ge=0,
        le=UNREAD_CAP,
        description=(
            "`GET /rooms` only: the unread messages that contain `@<the caller's name>` "
            "(case-insensitive)."
        ),
    )
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ROOM]})


EXAMPLE_LISTED_ROOM: dict[str, Any] = {
    **EXAMPLE_ROOM,
    "lastRead": "1040",
    "unread": 1,
    "mentions": 0,
}


class RoomList(BaseModel):
    rooms: list[Room]
    model_config = ConfigDict(json_schema_extra={"examples": [{"rooms": [EXAMPLE_LISTED_ROOM]}]})


class RoomPage(BaseModel):
    rooms: list[Room]
    next: str | None = Field(description="The cursor of the following page; null: the last one.")
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"rooms": [{**EXAMPLE_ROOM, "kind": "public"}], "next": None}]
        }
    )


class Member(BaseModel):
    id: UUID
    name: str
    role: Role
    joinedAt: str = Field(json_schema_extra={"format": "date-time"})


EXAMPLE_MEMBER: dict[str, Any] = {
    "id": EXAMPLE_USER_ID,
    "name": "Ann",
    "role": "owner",
    "joinedAt": "2026-11-28T10:00:00.000000+00:00",
}


class MemberPage(BaseModel):
    members: list[Member]
    next: str | None = Field(description="The cursor of the following page; null: the last one.")
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"members": [EXAMPLE_MEMBER], "next": None}]}
    )


class MemberPresence(BaseModel):
    """A member and whether they are online (docs/ROOM_STATE.md, "Presence")."""

    id: UUID
    name: str
    online: bool
    lastSeen: str | None = Field(
        json_schema_extra={"format": "date-time"},
        description="When they were last connected: now for a member online; null if unknown.",
    )


class RoomPresence(BaseModel):
    online: int = Field(ge=0, description="How many of the room's members are online.")
    members: list[MemberPresence]
    next: str | None = Field(description="The cursor of the following page; null: the last one.")
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "online": 1,
                    "members": [
                        {
                            "id": EXAMPLE_USER_ID,
                            "name": "Ann",
                            "online": True,
                            "lastSeen": "2026-11-28T10:05:00.000+00:00",
                        },
                        {
                            "id": EXAMPLE_PEER_ID,
                            "name": "Bo",
                            "online": False,
                            "lastSeen": "2026-11-28T09:41:12.250+00:00",
                        },
                    ],
                    "next": None,
                }
            ]
        }
    )


class MemberReply(BaseModel):
    """The member as added or changed."""

    member: Member
    model_config = ConfigDict(json_schema_extra={"examples": [{"member": EXAMPLE_MEMBER}]})


# ---- read state (docs/ROOM_STATE.md, "Read state") --------------------------------------------

RECEIPTS_MAX = 100  # the furthest readers a receipts list shows


class ReadMarker(_Body):
    """The body of `PUT /rooms/{room}/read`."""

    lastRead: Annotated[
        MessageIdText,
        NUL_FREE,
        Problem("must be a message _id"),
        Field(description="The `_id` of a message of this room: read up to and including it."),
    ]
    model_config = ConfigDict(json_schema_extra={"examples": [{"lastRead": "1043"}]})


class UserChanges(_Body):
    """The body of `PATCH /users/me`."""

    sendReceipts: Annotated[
        StrictBool,
        Problem("must be true or false"),
        Field(description="false: other people no longer see how far this user has read."),
    ]
    model_config = ConfigDict(json_schema_extra={"examples": [{"sendReceipts": False}]})


class ReceiptEntry(BaseModel):
    user: UUID
    lastRead: str = Field(pattern="^[0-9]+$", description="The `_id` they have read up to.")


class ReceiptList(BaseModel):
    """How far the room's other members have read, furthest first."""

    receipts: list[ReceiptEntry] = Field(max_length=RECEIPTS_MAX)
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"receipts": [{"user": EXAMPLE_PEER_ID, "lastRead": "1043"}]}]
        }
    )
