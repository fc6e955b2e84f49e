"""The API's OpenAPI 3.1 description, served as `/openapi.json` and rendered as `/docs`.

The document is built from the same constants and settings the handlers validate
against (validation.py, ApiSettings), so the numbers in it cannot drift from the code.
`tests/unit/test_openapi.py` checks it against the OpenAPI 3.1 meta-schema and against
the app's router; `tests/contract/` fuzzes the live API with it (schemathesis).

`/docs` is a plain server-rendered HTML page: no scripts, no CDN, every value escaped.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from aiohttp import web

from services.api_service.keys import SETTINGS
from services.api_service.settings import ApiSettings
from services.api_service.validation import (
    EMAIL_MAX,
    NAME_MAX,
    NAME_MIN,
    PASSWORD_MAX,
    PASSWORD_MIN,
)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
_JSON = "application/json"
_MESSAGE_ID_PATTERN = "^[0-9]{1,18}$"  # validation._message_id: ASCII digits, at most 18

Json = dict[str, Any]


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> Json:
    return _ref("schemas", name)


def _json_content(schema: Json, example: Any = None) -> Json:
    media: Json = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {_JSON: media}


def _with_request_id(headers: Json | None = None) -> Json:
    return {"X-Request-ID": _ref("headers", "X-Request-ID"), **(headers or {})}


def _ok(description: str, schema: Json, example: Any = None) -> Json:
    return {
        "description": description,
        "headers": _with_request_id(),
        "content": _json_content(schema, example),
    }


# ---- the document -------------------------------------------------------------------------------


def build_openapi(settings: ApiSettings) -> Json:
    """The OpenAPI 3.1 document of every route the API serves (page routes aside)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": _info(settings),
        "tags": [
            {"name": "auth", "description": "Accounts and JSON Web Tokens."},
            {"name": "messages", "description": "Posting and paging through the chat history."},
            {"name": "operations", "description": "Health, readiness, metrics and this reference."},
        ],
        "paths": _paths(settings),
        "components": {
            "schemas": _schemas(settings),
            "responses": _responses(settings),
            "headers": _headers(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "The `token` from `POST /signin`: HS256, claims `sub` (user id), `name`, "
                        f"`iat`, `exp` (valid for {settings.jwt_ttl_seconds} seconds). Send it as "
                        "`Authorization: Bearer <token>`; the Socket.IO gateways accept the same token."
                    ),
                }
            },
        },
    }


def _info(settings: ApiSettings) -> Json:
    limits = [
        f"request bodies up to {settings.max_body_bytes} bytes (413 above)",
        f"message text up to {settings.message_max_chars} characters",
        f"history pages of 1 to {settings.history_max_limit} messages (default {settings.history_default_limit})",
        _rate_text("posting messages", settings.messages_per_minute, "per user"),
        _rate_text("sign-in and sign-up", settings.auth_per_minute, "per client address"),
    ]
    return {
        "title": "Chat API",
        "version": API_VERSION,
        "summary": "REST half of a horizontally scalable real-time chat backend.",
        "description": (
            "Sign up, sign in, post messages and page through the history. Every stored message "
            "is also pushed to connected Socket.IO clients as a `getAllmessages` event by the "
            "realtime gateways (`/socket.io/` on the same public origin).\n\n"
            'Every error is a JSON object `{"message": ..., "code": ...}` (plus `fields` '
            "for invalid input) with the HTTP status; every response carries an `X-Request-ID`.\n\n"
            "Limits of this deployment: " + "; ".join(limits) + "."
        ),
        "license": {"name": "MIT", "identifier": "MIT"},
    }


def _rate_text(what: str, per_minute: int, scope: str) -> str:
    if per_minute <= 0:
        return f"{what}: no rate limit"
    return f"{what}: {per_minute} requests per minute {scope} (429 with Retry-After above)"


def _paths(settings: ApiSettings) -> Json:
    bearer: list[Json] = [{"bearerAuth": []}]
    public: list[Json] = []
    return {
        "/signup": {
            "post": {
                "tags": ["auth"],
                "operationId": "signUp",
                "summary": "Create an account",
                "description": (
                    "Creates a user. Emails are unique regardless of case. Surrounding whitespace "
                    "of `name` and `email` is stripped before they are checked. "
                    + _rate_text("Rate limit", settings.auth_per_minute, "per client address")
                    + "."
                ),
                "security": public,
                "requestBody": {
                    "required": True,
                    "content": _json_content(
                        _schema("SignUpRequest"),
                        {
                            "name": "Ann",
                            "email": "ann@example.com",
                            "password": "correct horse battery",
                        },
                    ),
                },
                "responses": {
                    "201": _ok(
                        "The account was created.",
                        _schema("User"),
                        {
                            "_id": "0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c",
                            "name": "Ann",
                            "email": "ann@example.com",
                        },
                    ),
                    "400": _ref("responses", "BadRequest"),
                    "409": _ref("responses", "Conflict"),
                    "413": _ref("responses", "PayloadTooLarge"),
                    "422": _ref("responses", "NotPlainText"),
                    "429": _ref("responses", "TooManyRequests"),
                },
            }
        },
        "/signin": {
            "post": {
                "tags": ["auth"],
                "operationId": "signIn",
                "summary": "Exchange email and password for a token",
                "description": (
                    "An unknown email and a wrong password get the same 401 answer. "
                    + _rate_text("Rate limit", settings.auth_per_minute, "per client address")
                    + "."
                ),
                "security": public,
                "requestBody": {
                    "required": True,
                    "content": _json_content(
                        _schema("SignInRequest"),
                        {"email": "ann@example.com", "password": "correct horse battery"},
                    ),
                },
                "responses": {
                    "200": _ok(
                        "Signed in.",
                        _schema("Token"),
                        {
                            "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.signature",
                            "userId": "0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c",
                            "name": "Ann",
                        },
                    ),
                    "400": _ref("responses", "BadRequest"),
                    "401": _ref("responses", "Unauthorized"),
                    "413": _ref("responses", "PayloadTooLarge"),
                    "429": _ref("responses", "TooManyRequests"),
                },
            }
        },
        "/users/me": {
            "get": {
                "tags": ["auth"],
                "operationId": "currentUser",
                "summary": "The account the token belongs to",
                "security": bearer,
                "responses": {
                    "200": _ok(
                        "The current user.",
                        _schema("CurrentUser"),
                        {
                            "name": "Ann",
                            "email": "ann@example.com",
                            "user_id": "0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c",
                        },
                    ),
                    "401": _ref("responses", "Unauthorized"),
                },
            },
            "delete": {
                "tags": ["auth"],
                "operationId": "deleteAccount",
                "summary": "Delete the token's account",
                "description": (
                    "Needs the account's password again. Every token of the account stops working "
                    "at once: REST routes answer 401, the gateways drop and refuse its sockets. The "
                    "account's messages stay in the shared history with `userName` "
                    '`"Deleted user"`. Answers 503 (nothing deleted) while the gateways cannot be '
                    "told. " + _rate_text("Rate limit", settings.auth_per_minute, "per client address") + "."
                ),
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": _json_content(
                        _schema("PasswordConfirmation"), {"password": "correct horse battery"}
                    ),
                },
                "responses": {
                    "204": {"description": "The account is deleted.", "headers": _with_request_id()},
                    "400": _ref("responses", "BadRequest"),
                    "401": _ref("responses", "Unauthorized"),
                    "403": _ref("responses", "WrongPassword"),
                    "413": _ref("responses", "PayloadTooLarge"),
                    "429": _ref("responses", "TooManyRequests"),
                    "503": _ref("responses", "ServiceUnavailable"),
                },
            },
        },
        "/messages": {
            "get": {
                "tags": ["messages"],
                "operationId": "listMessages",
                "summary": "A page of the history, oldest first",
                "description": (
                    "Without `before`/`after`: the newest `limit` messages. `before=<_id>` pages "
                    "back from a message; `after=<_id>` catches up from one. Either way the page is "
                    "in chronological order (increasing `_id`). `_id`s increase in the order "
                    "messages become visible, so `after` never skips a message."
                ),
                "security": bearer,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": f"Page size (default {settings.history_default_limit}).",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": settings.history_max_limit,
                            "default": settings.history_default_limit,
                        },
                        "example": 50,
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "required": False,
                        "description": "Only messages with a smaller `_id` (older).",
                        "schema": _schema("MessageId"),
                        "example": "1042",
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "Only messages with a greater `_id` (newer).",
                        "schema": _schema("MessageId"),
                        "example": "1000",
                    },
                ],
                "responses": {
                    "200": _ok(
                        "The page, oldest first (possibly empty).",
                        _schema("MessageList"),
                        [_MESSAGE_EXAMPLE],
                    ),
                    "400": _ref("responses", "BadRequest"),
                    "401": _ref("responses", "Unauthorized"),
                },
            },
            "post": {
                "tags": ["messages"],
                "operationId": "postMessage",
                "summary": "Post a message as the token's user",
                "description": (
                    "Stores the message, then publishes it to every Socket.IO client "
                    "(`getAllmessages`). The author (`owner`, `userName`) comes from the token; "
                    "the body's values are ignored. `text` is sanitized with an HTML allow-list "
                    "(inline formatting, lists, quotes, code, links; no images or other embeds). "
                    "Posting again with the same `id` is safe: the answer is 200 with the message "
                    "stored the first time, and nothing is published twice. "
                    + _rate_text("Rate limit", settings.messages_per_minute, "per user")
                    + "."
                ),
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": _json_content(
                        _schema("NewMessage"),
                        {"id": _MESSAGE_EXAMPLE["id"], "text": "Hello <b>world</b>"},
                    ),
                },
                "responses": {
                    "201": _ok(
                        "Stored (and being published).", _schema("Message"), _MESSAGE_EXAMPLE
                    ),
                    "200": _ok(
                        "Already stored earlier with this `id` by this user: the stored message.",
                        _schema("Message"),
                        _MESSAGE_EXAMPLE,
                    ),
                    "400": _ref("responses", "BadRequest"),
                    "401": _ref("responses", "Unauthorized"),
                    "413": _ref("responses", "PayloadTooLarge"),
                    "429": _ref("responses", "TooManyRequests"),
                },
            },
        },
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "operationId": "health",
                "summary": "Liveness: the process serves requests",
                "security": public,
                "responses": {"200": _ok("Alive.", _schema("Health"), {"status": "ok"})},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["operations"],
                "operationId": "readiness",
                "summary": "Readiness: PostgreSQL and Redis answer",
                "description": "A load balancer takes the replica out of rotation while this is 503.",
                "security": public,
                "responses": {
                    "200": _ok(
                        "Ready.",
                        _schema("Readiness"),
                        {"status": "ready", "postgres": "ok", "redis": "ok", "pid": 4242},
                    ),
                    "503": _ok(
                        "A dependency does not answer.",
                        _schema("Readiness"),
                        {"status": "unavailable", "postgres": "ok", "redis": "unavailable", "pid": 4242},
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "operationId": "metrics",
                "summary": "Prometheus metrics of this process",
                "security": public,
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "headers": _with_request_id(),
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["operations"],
                "operationId": "openapi",
                "summary": "This document",
                "security": public,
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "headers": _with_request_id(),
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["openapi", "info", "paths"],
                                }
                            }
                        },
                    }
                },
            }
        },
        "/docs": {
            "get": {
                "tags": ["operations"],
                "operationId": "docs",
                "summary": "This document as a readable HTML page",
                "security": public,
                "responses": {
                    "200": {
                        "description": "A self-contained HTML page.",
                        "headers": _with_request_id(),
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


_MESSAGE_EXAMPLE: Json = {
    "_id": "1043",
    "id": "5d3c8a52-3a8e-4c8b-9a51-6f2d1d3e7b90",
    "owner": "0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c",
    "userName": "Ann",
    "text": "Hello <b>world</b>",
    "createdAt": "2025-01-31T12:34:56.789012+00:00",
}


def _schemas(settings: ApiSettings) -> Json:
    uuid_string: Json = {"type": "string", "format": "uuid"}
    return {
        "Error": {
            "type": "object",
            "description": "Every error response.",
            "required": ["message", "code"],
            "properties": {
                "message": {"type": "string", "description": "Human-readable; safe to show."},
                "code": {
                    "type": "string",
                    "description": "Machine-readable, e.g. `validation_failed`.",
                },
                "fields": {
                    "type": "object",
                    "description": "For invalid input: what is wrong with each field.",
                    "additionalProperties": {"type": "string"},
                },
            },
            "example": {
                "message": "invalid input (text: must not be empty)",
                "code": "validation_failed",
                "fields": {"text": "must not be empty"},
            },
        },
        "SignUpRequest": {
            "type": "object",
            "required": ["name", "email", "password"],
            "properties": {
                "name": {
                    "type": "string",
                    "minLength": NAME_MIN,
                    "maxLength": NAME_MAX,
                    "description": (
                        f"Display name, {NAME_MIN} to {NAME_MAX} characters after trimming; plain text: "
                        "no `<`, `>`, control or invisible formatting characters (422 otherwise)."
                    ),
                },
                "email": {"type": "string", "format": "email", "maxLength": EMAIL_MAX},
                "password": {
                    "type": "string",
                    "minLength": PASSWORD_MIN,
                    "maxLength": PASSWORD_MAX,
                },
            },
        },
        "PasswordConfirmation": {
            "type": "object",
            "required": ["password"],
            "properties": {"password": {"type": "string", "minLength": 1}},
        },
        "SignInRequest": {
            "type": "object",
            "required": ["email", "password"],
            "properties": {
                "email": {"type": "string"},
                "password": {"type": "string", "minLength": 1},
            },
        },
        "User": {
            "type": "object",
            "description": "A new account (never the password or its hash).",
            "required": ["_id", "name", "email"],
            "properties": {
                "_id": uuid_string,
                "name": {"type": "string"},
                "email": {"type": "string"},
            },
        },
        "Token": {
            "type": "object",
            "required": ["token", "userId", "name"],
            "properties": {
                "token": {"type": "string", "description": "A JWT for `Authorization: Bearer`."},
                "userId": uuid_string,
                "name": {"type": "string"},
            },
        },
        "CurrentUser": {
            "type": "object",
            "required": ["name", "email", "user_id"],
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string"},
                "user_id": uuid_string,
            },
        },
        "MessageId": {
            "type": "string",
            "pattern": _MESSAGE_ID_PATTERN,
            "description": "A message `_id`: a decimal integer in a string.",
            "example": "1043",
        },
        "NewMessage": {
            "type": "object",
            "required": ["id", "text"],
            "properties": {
                "id": {**uuid_string, "description": "Chosen by the client; makes retries safe."},
                "text": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": settings.message_max_chars,
                    "description": "May contain HTML; unsafe markup is removed. Empty after that: 400.",
                },
                "owner": {"description": "Ignored (the author comes from the token)."},
                "userName": {"description": "Ignored (the author comes from the token)."},
            },
        },
        "Message": {
            "type": "object",
            "description": "A stored message, as REST returns it and Socket.IO pushes it.",
            "required": ["_id", "id", "owner", "userName", "text", "createdAt"],
            "properties": {
                "_id": {
                    "type": "string",
                    "pattern": "^[0-9]+$",
                    "description": "Increases in the order messages become visible; use it to sort and page.",
                },
                "id": {**uuid_string, "description": "The client's id from the POST."},
                "owner": {**uuid_string, "description": "The author's user id."},
                "userName": {"type": "string", "description": "The author's name when posting."},
                "text": {"type": "string", "description": "Sanitized HTML."},
                "createdAt": {"type": "string", "format": "date-time"},
            },
            "example": _MESSAGE_EXAMPLE,
        },
        "MessageList": {"type": "array", "items": _schema("Message")},
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"enum": ["ready", "unavailable"]},
                "pid": {
                    "type": "integer",
                    "description": "The answering process, so a launcher can tell it from an older one on the port.",
                },
            },
            "additionalProperties": {
                "enum": ["ok", "unavailable"],
                "description": "One entry per dependency.",
            },
        },
    }


def _error(description: str, example: Json, headers: Json | None = None) -> Json:
    return {
        "description": description,
        "headers": _with_request_id(headers),
        "content": _json_content(_schema("Error"), example),
    }


def _responses(settings: ApiSettings) -> Json:
    return {
        "BadRequest": _error(
            "Invalid input: malformed JSON, a body that is not an object, or a bad field (see `fields`).",
            {
                "message": "invalid input (email: must be a valid email address)",
                "code": "validation_failed",
                "fields": {"email": "must be a valid email address"},
            },
        ),
        "Unauthorized": _error(
            "Missing, malformed, forged or expired token, or one whose account was deleted; "
            "or wrong credentials at sign-in.",
            {"message": "Unauthorized: token expired", "code": "unauthorized"},
        ),
        "NotPlainText": _error(
            "The display name is not plain text: it contains `<`, `>`, control characters or "
            "invisible formatting characters.",
            {"message": "invalid name (must not contain < or >)", "code": "unprocessable",
             "fields": {"name": "must not contain < or >"}},
        ),
        "WrongPassword": _error(
            "The password does not match the token's account.",
            {"message": "Incorrect password", "code": "forbidden", "fields": {"password": "does not match this account"}},
        ),
        "ServiceUnavailable": _error(
            "A service this request needs is unreachable; nothing changed. Retry after `Retry-After` seconds.",
            {"message": "Account deletion is unavailable right now; nothing was deleted, try again later",
             "code": "unavailable"},
            {"Retry-After": _ref("headers", "Retry-After")},
        ),
        "Conflict": _error(
            "The email is taken.",
            {"message": "A user with this email already exists", "code": "conflict"},
        ),
        "PayloadTooLarge": _error(
            f"The body is larger than {settings.max_body_bytes} bytes.",
            {"message": "Request Entity Too Large", "code": "request_entity_too_large"},
        ),
        "TooManyRequests": _error(
            "Rate limited: retry after the number of seconds in `Retry-After`.",
            {"message": "Too many requests, slow down", "code": "rate_limited"},
            {"Retry-After": _ref("headers", "Retry-After")},
        ),
    }


def _headers() -> Json:
    return {
        "X-Request-ID": {
            "description": "The request's id (the client's own `X-Request-ID` when well-formed); it is in the logs.",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        },
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        },
    }


# ---- serving ------------------------------------------------------------------------------------

_cache: dict[ApiSettings, tuple[Json, bytes, str]] = {}


def _rendered(settings: ApiSettings) -> tuple[Json, bytes, str]:
    """(document, its JSON, its HTML page), built once per settings object."""
    cached = _cache.get(settings)
    if cached is None:
        document = build_openapi(settings)
        cached = (document, json.dumps(document, indent=2).encode(), render_docs(document))
        _cache[settings] = cached
    return cached


async def openapi_json(request: web.Request) -> web.Response:
    """`GET /openapi.json`."""
    return web.Response(
        body=_rendered(request.app[SETTINGS])[1], content_type=_JSON, charset="utf-8"
    )


async def docs_page(request: web.Request) -> web.Response:
    """`GET /docs`."""
    return web.Response(
        text=_rendered(request.app[SETTINGS])[2], content_type="text/html", charset="utf-8"
    )


def routes(settings: ApiSettings) -> list[web.RouteDef]:
    """The two routes, for `app.add_routes`; renders the document up front so errors show at start."""
    _rendered(settings)
    return [web.get("/openapi.json", openapi_json), web.get("/docs", docs_page)]


# ---- the HTML page ------------------------------------------------------------------------------

_METHOD_ORDER = ("get", "post", "put", "patch", "delete")
_CODE_SPAN = re.compile(r"`([^`]+)`")
# On every response, so the intro mentions it once instead of every response table.
_EVERYWHERE_HEADERS = frozenset({"X-Request-ID"})
_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
main{max-width:960px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:40px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{margin:0;font-size:17px;font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
h4{margin:16px 0 6px;font-size:14px;text-transform:uppercase;letter-spacing:.04em;color:#57606a}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
pre{background:#f3f4f6;border:1px solid #d0d7de;border-radius:6px;padding:10px;overflow:auto}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{text-align:left;vertical-align:top;border-bottom:1px solid #e5e7eb;padding:4px 8px}
th{font-size:13px;color:#57606a}
.op{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;margin:16px 0}
.m{display:inline-block;min-width:52px;text-align:center;border-radius:4px;color:#fff;padding:1px 6px;margin-right:8px}
.get{background:#0969da}.post{background:#1a7f37}.put,.patch{background:#9a6700}.delete{background:#cf222e}
.lock{font-size:13px;color:#9a6700}.muted{color:#57606a}nav ul{columns:2}
"""


def render_docs(document: Json) -> str:
    """A readable reference of `document`, every value escaped with html.escape."""
    info = document.get("info", {})
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(info.get('title', 'API'))} reference</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f'<h1>{_e(info.get("title", "API"))} <span class="muted">{_e(info.get("version", ""))}</span></h1>',
        f"<p>{_e(info.get('summary', ''))}</p>",
        _paragraphs(info.get("description", "")),
        (
            '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> '
            f"(OpenAPI {_e(document.get('openapi', ''))}).</p>"
        ),
    ]
    operations = list(_operations(document))
    parts.append("<nav><h2>Endpoints</h2><ul>")
    for path, method, op in operations:
        parts.append(
            f'<li><a href="#{_e(_anchor(method, path))}"><code>{_e(method.upper())} {_e(path)}</code></a>'
            f" — {_md(op.get('summary', ''))}</li>"
        )
    parts.append("</ul></nav>")
    schemes = document.get("components", {}).get("securitySchemes", {})
    if schemes:
        parts.append("<h2>Authentication</h2>")
        for name, scheme in schemes.items():
            parts.append(
                f"<p><b>{_e(name)}</b>: {_e(scheme.get('type', ''))} {_e(scheme.get('scheme', ''))} "
                f"({_e(scheme.get('bearerFormat', ''))}). {_md(scheme.get('description', ''))}</p>"
            )
    parts.append("<h2>Operations</h2>")
    for path, method, op in operations:
        parts.append(_render_operation(document, path, method, op))
    parts.append("<h2>Schemas</h2>")
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        parts.append(f'<div class="op" id="{_e("schema-" + name)}"><h3>{_e(name)}</h3>')
        parts.append(_render_schema(schema))
        if "example" in schema:
            parts.append(f"<h4>Example</h4>{_pre(schema['example'])}")
        parts.append("</div>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _md(text: object) -> str:
    """Escaped text with `backticks` shown as code (applied after escaping, so still safe)."""
    return _CODE_SPAN.sub(r"<code>\1</code>", _e(text))


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{_md(p)}</p>" for p in text.split("\n\n") if p.strip())


def _pre(value: object) -> str:
    return f"<pre>{_e(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _anchor(method: str, path: str) -> str:
    return f"op-{method}-{path.strip('/').replace('/', '-').replace('.', '-') or 'root'}"


def _operations(document: Json) -> list[tuple[str, str, Json]]:
    found = []
    for path, item in document.get("paths", {}).items():
        for method in _METHOD_ORDER:
            if method in item:
                found.append((path, method, item[method]))
    return found


def _resolve(document: Json, node: Json) -> Json:
    """Follow a local `$ref` (one level is all this document uses)."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = document
    for key in ref[2:].split("/"):
        target = target[key]
    return _resolve(document, target)


def _render_operation(document: Json, path: str, method: str, op: Json) -> str:
    parts = [
        f'<section class="op" id="{_e(_anchor(method, path))}">',
        f'<h3><span class="m {_e(method)}">{_e(method.upper())}</span>{_e(path)}</h3>',
        f"<p><b>{_e(op.get('summary', ''))}</b></p>",
        _paragraphs(op.get("description", "")),
    ]
    if op.get("security"):
        names = ", ".join(name for requirement in op["security"] for name in requirement)
        parts.append(
            f'<p class="lock">Requires authentication: {_e(names)} (Authorization: Bearer &lt;token&gt;).</p>'
        )
    params = op.get("parameters", [])
    if params:
        parts.append(
            "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th>"
            "<th>type</th><th>description</th></tr>"
        )
        for param in params:
            param = _resolve(document, param)
            parts.append(
                f"<tr><td><code>{_e(param['name'])}</code></td><td>{_e(param['in'])}</td>"
                f"<td>{'yes' if param.get('required') else 'no'}</td>"
                f"<td>{_type_summary(param.get('schema', {}), document)}</td>"
                f"<td>{_md(param.get('description', ''))}"
                + (f" Example: <code>{_e(param['example'])}</code>" if "example" in param else "")
                + "</td></tr>"
            )
        parts.append("</table>")
    body = op.get("requestBody")
    if body:
        body = _resolve(document, body)
        parts.append(f"<h4>Request body{' (required)' if body.get('required') else ''}</h4>")
        parts.append(_render_content(document, body.get("content", {})))
    parts.append("<h4>Responses</h4>")
    for status, response in sorted(op.get("responses", {}).items()):
        response = _resolve(document, response)
        parts.append(f"<p><b>{_e(status)}</b> — {_md(response.get('description', ''))}</p>")
        headers = {
            k: _resolve(document, v)
            for k, v in response.get("headers", {}).items()
            if k not in _EVERYWHERE_HEADERS
        }
        if headers:
            parts.append("<table><tr><th>header</th><th>type</th><th>description</th></tr>")
            for name, header in headers.items():
                parts.append(
                    f"<tr><td><code>{_e(name)}</code></td><td>{_type_summary(header.get('schema', {}), document)}"
                    f"</td><td>{_md(header.get('description', ''))}</td></tr>"
                )
            parts.append("</table>")
        parts.append(_render_content(document, response.get("content", {})))
    parts.append("</section>")
    return "\n".join(parts)


def _render_content(document: Json, content: Json) -> str:
    parts = []
    for media_type, media in content.items():
        schema = media.get("schema", {})
        parts.append(
            f"<p>Content: <code>{_e(media_type)}</code>, {_type_summary(schema, document)}</p>"
        )
        resolved = _resolve(document, schema)
        if resolved.get("properties") and "$ref" not in schema:
            parts.append(_render_schema(resolved))
        if "example" in media:
            parts.append(_pre(media["example"]))
    return "\n".join(parts)


def _type_summary(schema: Json, document: Json | None = None) -> str:
    """`string (uuid)`, `integer 1–500, default 100`, a link to a named schema, ..."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return f'<a href="#{_e("schema-" + name)}">{_e(name)}</a>'
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    kind = schema.get("type", "any")
    text = _e(" | ".join(kind) if isinstance(kind, list) else kind)
    if kind == "array" and "items" in schema:
        text += " of " + _type_summary(schema["items"], document)
    details = []
    if "format" in schema:
        details.append(_e(schema["format"]))
    for low, high, unit in (("minLength", "maxLength", " chars"), ("minimum", "maximum", "")):
        if low in schema or high in schema:
            details.append(f"{_e(schema.get(low, 0))}–{_e(schema.get(high, '∞'))}{unit}")
    if "pattern" in schema:
        details.append(f"pattern <code>{_e(schema['pattern'])}</code>")
    if "default" in schema:
        details.append(f"default {_e(schema['default'])}")
    return text + (f" ({', '.join(details)})" if details else "")


def _render_schema(schema: Json) -> str:
    parts = []
    if schema.get("description"):
        parts.append(f"<p>{_md(schema['description'])}</p>")
    properties = schema.get("properties")
    if properties:
        required = set(schema.get("required", []))
        parts.append(
            "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>"
        )
        for name, prop in properties.items():
            parts.append(
                f"<tr><td><code>{_e(name)}</code></td><td>{_type_summary(prop)}</td>"
                f"<td>{'yes' if name in required else 'no'}</td><td>{_md(prop.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            parts.append(
                f"<p>Other fields: {_type_summary(extra)} {_md(extra.get('description', ''))}</p>"
            )
    elif schema.get("type") or schema.get("$ref"):
        parts.append(f"<p>{_type_summary(schema)}</p>")
    return "\n".join(parts)
