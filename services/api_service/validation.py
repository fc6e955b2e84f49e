"""Parsing request input with the models of models.py into typed values.

Each parser takes the raw body (bytes, validated by pydantic straight from JSON) or an
already parsed object, and returns a model or raises ValidationFailed naming every bad
field with the sentence the API has always sent, so handlers never touch unchecked
input and error bodies keep their shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError
from pydantic_core import ErrorDetails

from services.api_service.errors import Unprocessable, ValidationFailed
from services.api_service.models import (
    EMAIL_MAX,
    NAME_MAX,
    NAME_MIN,
    PASSWORD_MAX,
    PASSWORD_MIN,
    NewMessage,
    PasswordConfirmation,
    Problem,
    SignInRequest,
    SignUpRequest,
    history_query_model,
    new_message_model,
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
