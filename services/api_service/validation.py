"""Parsing and validating request input: pure functions, unit-tested on their own.

Each parser returns a typed value or raises ValidationFailed naming the bad fields, so
handlers never touch unchecked input.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nh3

from services.api_service.errors import Unprocessable, ValidationFailed
from services.shared.names import name_problem

NAME_MIN, NAME_MAX = 2, 30
PASSWORD_MIN, PASSWORD_MAX = 8, 256
EMAIL_MAX = 254
# Deliberately loose: the only real check of an address is mail reaching it.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# What message text may keep. The client renders text as HTML, so the allow-list is
# inline formatting, lists, quotes, code and links; nothing that loads a resource when
# the message is shown (no <img>: an external image is a tracking pixel that tells its
# owner who read the chat, from which address, and when).
MESSAGE_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "u", "s", "del", "ins", "mark", "small", "sub", "sup",
     "code", "kbd", "pre", "br", "p", "blockquote", "ul", "ol", "li", "span"}
)
MESSAGE_ATTRIBUTES = {"a": {"href"}}
MESSAGE_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"


@dataclass(frozen=True)
class SignUp:
    name: str
    email: str
    password: str


@dataclass(frozen=True)
class SignIn:
    email: str
    password: str


@dataclass(frozen=True)
class MessageInput:
    client_id: str
    text: str


@dataclass(frozen=True)
class HistoryQuery:
    limit: int
    before: int | None
    after: int | None


def _require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed("request body must be a JSON object")
    return body


def _string(body: Mapping[str, Any], field: str, errors: dict[str, str]) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        errors[field] = "required string"
        return ""
    if "\x00" in value:  # PostgreSQL text cannot store NUL
        errors[field] = "must not contain NUL characters"
        return ""
    return value


def _raise_if(errors: dict[str, str]) -> None:
    if errors:
        summary = "; ".join(f"{field}: {problem}" for field, problem in errors.items())
        raise ValidationFailed(f"invalid input ({summary})", fields=errors)


def parse_email(raw: str, errors: dict[str, str]) -> str:
    email = raw.strip()
    if "email" not in errors and (len(email) > EMAIL_MAX or not _EMAIL.match(email)):
        errors["email"] = "must be a valid email address"
    return email


def parse_signup(body: Any) -> SignUp:
    body = _require_object(body)
    errors: dict[str, str] = {}
    name = _string(body, "name", errors).strip()
    if "name" not in errors and not NAME_MIN <= len(name) <= NAME_MAX:
        errors["name"] = f"must be {NAME_MIN} to {NAME_MAX} characters"
    email = parse_email(_string(body, "email", errors), errors)
    password = _string(body, "password", errors)
    if "password" not in errors and not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        errors["password"] = f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"
    _raise_if(errors)
    problem = name_problem(name)
    if problem is not None:  # a well-formed request whose name is not plain text
        raise Unprocessable(f"invalid name ({problem})", fields={"name": problem})
    return SignUp(name=name, email=email, password=password)


def parse_signin(body: Any) -> SignIn:
    body = _require_object(body)
    errors: dict[str, str] = {}
    email = _string(body, "email", errors).strip()
    password = _string(body, "password", errors)
    if "password" not in errors and not password:
        errors["password"] = "required"
    _raise_if(errors)
    return SignIn(email=email, password=password)


def parse_password_confirmation(body: Any) -> str:
    """The `password` that confirms a destructive request (`DELETE /users/me`)."""
    body = _require_object(body)
    errors: dict[str, str] = {}
    password = _string(body, "password", errors)
    if "password" not in errors and not password:
        errors["password"] = "required"
    _raise_if(errors)
    return password


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


def parse_message(body: Any, max_chars: int) -> MessageInput:
    """Validate a posted message; `owner` and `userName` in the body are ignored."""
    body = _require_object(body)
    errors: dict[str, str] = {}
    raw_id = _string(body, "id", errors)
    client_id = ""
    if "id" not in errors:
        try:
            client_id = str(uuid.UUID(raw_id))
        except ValueError:
            errors["id"] = "must be a UUID"
    text = _string(body, "text", errors)
    if "text" not in errors:
        if len(text) > max_chars:
            errors["text"] = f"must be at most {max_chars} characters"
        else:
            text = sanitize_text(text)
            if not text:
                errors["text"] = "must not be empty"
    _raise_if(errors)
    return MessageInput(client_id=client_id, text=text)


def _message_id(query: Mapping[str, str], name: str, errors: dict[str, str]) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        errors[name] = "must be a message _id"
        return None
    return int(raw)


def parse_history_query(query: Mapping[str, str], default_limit: int, max_limit: int) -> HistoryQuery:
    errors: dict[str, str] = {}
    limit = default_limit
    raw_limit = query.get("limit")
    if raw_limit is not None:
        # The length first: int() of thousands of digits raises (and costs quadratic time).
        fits = len(raw_limit) <= len(str(max_limit))
        if fits and raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= max_limit:
            limit = int(raw_limit)
        else:
            errors["limit"] = f"must be an integer from 1 to {max_limit}"
    before = _message_id(query, "before", errors)
    after = _message_id(query, "after", errors)
    _raise_if(errors)
    return HistoryQuery(limit=limit, before=before, after=after)
