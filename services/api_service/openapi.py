"""The OpenAPI 3.1 document, generated from the route table (endpoints.py) and its models.

Schemas come from the pydantic models the handlers validate with, operations and their
statuses from the routes the router serves, so neither can drift from the code.
`tests/unit/test_openapi.py` checks it against the OpenAPI 3.1 meta-schema and against
the app's router; `tests/contract/` fuzzes the live API with it (schemathesis). `/docs`
renders it with Swagger UI (webpage.py).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from services.api_service.keys import API_DOCUMENT
from services.api_service.routes import JSON, Reply, Route, rate_text
from services.api_service.settings import ApiSettings

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
Json = dict[str, Any]
TAGS = [
    {"name": "auth", "description": "Accounts and JSON Web Tokens."},
    {"name": "messages", "description": "Posting and paging through the chat history."},
    {
        "name": "rooms",
        "description": "Rooms, direct messages, memberships and finding people (docs/ROOMS.md).",
    },
    {"name": "operations", "description": "Health, readiness, metrics and this reference."},
]
# What each path parameter is: a room or user id that is not a UUID, and a message id that
# is not one, answer 404 like an unknown id; an emoji that is not one answers 422.
UUID_SCHEMA: Json = {"type": "string", "format": "uuid"}
PATH_PARAMETERS: dict[str, tuple[str, Json]] = {
    "room": ("The room's id.", UUID_SCHEMA),
    "user": ("The member's user id.", UUID_SCHEMA),
    "message": ("The message's `_id`.", {"type": "string", "pattern": "^[0-9]{1,18}$"}),
    "emoji": (
        "One emoji, URL-encoded (e.g. `%F0%9F%91%8D` for 👍).",
        {"type": "string", "minLength": 1},
    ),
}
HEADERS: Json = {
    "X-Request-ID": {
        "description": (
            "The request's id (the client's own `X-Request-ID` when well-formed); it "
            "is in the logs."
        ),
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
}


class _Untitled(GenerateJsonSchema):
    """pydantic's schemas without a `title` on every property (the names say it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def build_openapi(settings: ApiSettings, table: list[Route]) -> Json:
    """The OpenAPI 3.1 document of every route in `table`."""
    used: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for route in table:
        if route.body is not None:
            used[(route.body, "validation")] = None
        for reply in route.replies.values():
            if reply.model is not None:
                used[(reply.model, "serialization")] = None
    refs, definitions = models_json_schema(
        list(used), ref_template="#/components/schemas/{model}", schema_generator=_Untitled
    )
    shared: Json = {}
    paths: Json = {}
    for route in table:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, shared)
    return {
        "openapi": OPENAPI_VERSION,
        "info": _info(settings),
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "responses": dict(sorted(shared.items())),
            "headers": HEADERS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "The `token` from `POST /signin`: HS256, claims `sub` (user id), `name`, "
                        f"`iat`, `exp` (valid for {settings.jwt_ttl_seconds} seconds). Send it as "
                        "`Authorization: Bearer <token>`; the Socket.IO gateways accept the same "
                        "token."
                    ),
                }
            },
        },
    }


def _operation(route: Route, refs: dict[Any, Json], shared: Json) -> Json:
    operation: Json = {
        "tags": [route.tag],
        "operationId": route.operation_id,
        "summary": route.summary,
        "security": [{"bearerAuth": []}] if route.auth else [],
    }
    if route.description:
        operation["description"] = route.description
    parameters = _path_parameters(route.path)
    if route.query is not None:
        parameters += _query_parameters(route.query)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: _media(refs[(route.body, "validation")], route.body, None)},
        }
    responses: Json = {}
    for status, reply in sorted(route.replies.items()):
        response = _response(reply, refs)
        if reply.name is None:
            responses[str(status)] = response
        else:
            shared[reply.name] = response
            responses[str(status)] = {"$ref": f"#/components/responses/{reply.name}"}
    operation["responses"] = responses
    return operation


def _path_parameters(path: str) -> list[Json]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[name][0],
            "schema": PATH_PARAMETERS[name][1],
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]


def _query_parameters(model: type[BaseModel]) -> list[Json]:
    schema = model.model_json_schema(schema_generator=_Untitled)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        parameter: Json = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        if prop.get("examples"):
            parameter["example"] = prop.pop("examples")[0]
        if "default" in prop and prop["default"] is None:
            del prop["default"]  # absent, not null: a query string has no null
        parameter["schema"] = prop
        parameters.append(parameter)
    return parameters


def _response(reply: Reply, refs: dict[Any, Json]) -> Json:
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if reply.retry_after:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    response: Json = {"description": reply.description, "headers": headers}
    if reply.model is not None:
        response["content"] = {
            JSON: _media(refs[(reply.model, "serialization")], reply.model, reply.example)
        }
    elif reply.media_type is not None:
        response["content"] = {reply.media_type: {"schema": {"type": "string"}}}
    return response


def _media(schema: Json, model: type[BaseModel], example: Any) -> Json:
    if example is None:  # the model's own first example
        example = next(
            iter(model.model_json_schema(schema_generator=_Untitled).get("examples", [])), None
        )
    return {"schema": schema} if example is None else {"schema": schema, "example": example}


def _info(settings: ApiSettings) -> Json:
    limits = [
        f"request bodies up to {settings.max_body_bytes} bytes (413 above)",
        f"message text up to {settings.message_max_chars} characters",
        (
            f"history pages of 1 to {settings.history_max_limit} messages "
            f"(default {settings.history_default_limit})"
        ),
        rate_text("posting messages", settings.messages_per_minute, "per user"),
        rate_text("sign-in and sign-up", settings.auth_per_minute, "per client address"),
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


async def openapi_json(request: web.Request) -> web.Response:
    """`GET /openapi.json`: the document, encoded once when the app was made."""
    return web.Response(body=request.app[API_DOCUMENT], content_type=JSON, charset="utf-8")
