"""The OpenAPI document: valid OpenAPI 3.1, generated from the route table and the models
the handlers validate with, faithful to the router, and rendered by Swagger UI at /docs.

Validity is checked with the OpenAPI 3.1 meta-schema that schemathesis ships (the
project's contract-test tool, so no extra dependency) through jsonschema_rs, and every
Schema Object in it against the JSON Schema 2020-12 meta-schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from schemathesis.specs.openapi.definitions import OPENAPI_31

from services.api_service import models, validation
from services.api_service.app import create_app
from services.api_service.keys import API_DOCUMENT
from services.api_service.security_headers import DOCS_CSP
from services.api_service.settings import ApiSettings
from services.api_service.webpage import VENDOR_FILES
from services.shared.config import Env

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Routes of the browser page, not of the API.
PAGE_ROUTES = ("/",)
PAGE_PREFIXES = ("/static/",)


def settings(**env: str) -> ApiSettings:
    return ApiSettings.from_env(Env(env))


def build_openapi(api_settings: ApiSettings) -> dict[str, Any]:
    """The document the app serves (making the app connects to nothing)."""
    document: dict[str, Any] = json.loads(create_app(api_settings)[API_DOCUMENT])
    return document


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi(settings())


def walk(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    target: Any = document
    for key in ref[2:].split("/"):
        assert isinstance(target, dict) and key in target, f"dangling $ref {ref}"
        target = target[key]
    return target


def schema_objects(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Schema Object.

    That is components.schemas and each `schema` of a parameter, header or media type.
    """
    for name, schema in document["components"]["schemas"].items():
        yield f"#/components/schemas/{name}", schema
    for path, node in walk(document):
        if path.startswith("#/components/schemas/"):
            continue
        if isinstance(node, dict) and isinstance(node.get("schema"), dict):
            yield f"{path}/schema", node["schema"]


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A 2020-12 validator for `schema` whose `#/components/...` refs resolve in `document`."""
    root = {"$schema": DRAFT_2020_12, "components": document["components"], "allOf": [schema]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


# ---- validity -------------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    errors = [
        f"{list(e.instance_path)}: {e.message}"
        for e in jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(document)
    ]
    assert not errors, errors


def test_document_is_plain_json(document: dict[str, Any]) -> None:
    assert json.loads(json.dumps(document)) == document


def test_every_schema_object_is_valid_json_schema(document: dict[str, Any]) -> None:
    for where, schema in schema_objects(document):
        try:
            jsonschema_rs.meta.validate({"$schema": DRAFT_2020_12, **schema})
        except jsonschema_rs.ValidationError as exc:
            pytest.fail(f"{where}: {exc}")


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = [node["$ref"] for _, node in walk(document) if isinstance(node, dict) and "$ref" in node]
    assert refs
    for ref in refs:
        resolve(document, ref)


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), ids


def test_examples_match_their_schemas(document: dict[str, Any]) -> None:
    checked = 0
    for where, node in walk(document):
        if not isinstance(node, dict):
            continue
        # A Media Type or Parameter Object (example next to schema) or a Schema Object
        # (the models' `examples`).
        examples = [node["example"]] if "example" in node else []
        if isinstance(node.get("examples"), list) and "type" in node:
            examples += node["examples"]
        for example in examples:
            schema = node["schema"] if isinstance(node.get("schema"), dict) else node
            errors = [e.message for e in validator(document, schema).iter_errors(example)]
            assert not errors, (where, errors)
            checked += 1
    assert checked >= 20


# ---- faithful to the code -------------------------------------------------------------------


def test_limits_come_from_validation_and_settings() -> None:
    custom = settings(
        MESSAGE_MAX_CHARS="123",
        HISTORY_MAX_LIMIT="42",
        HISTORY_DEFAULT_LIMIT="7",
        MAX_BODY_BYTES="2048",
        RATE_LIMIT_MESSAGES_PER_MINUTE="11",
        RATE_LIMIT_AUTH_PER_MINUTE="0",
    )
    doc = build_openapi(custom)
    schemas = doc["components"]["schemas"]
    signup = schemas["SignUpRequest"]["properties"]
    assert (signup["name"]["minLength"], signup["name"]["maxLength"]) == (
        validation.NAME_MIN,
        validation.NAME_MAX,
    )
    assert (signup["password"]["minLength"], signup["password"]["maxLength"]) == (
        validation.PASSWORD_MIN,
        validation.PASSWORD_MAX,
    )
    assert signup["email"]["maxLength"] == validation.EMAIL_MAX
    assert schemas["NewMessage"]["properties"]["text"]["maxLength"] == 123
    limit = next(p for p in doc["paths"]["/messages"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 42, "default": 7}
    assert "2048 bytes" in doc["components"]["responses"]["PayloadTooLarge"]["description"]
    assert "11 requests per minute per user" in doc["paths"]["/messages"]["post"]["description"]
    assert "no rate limit" in doc["paths"]["/signin"]["post"]["description"]


def test_room_limits_come_from_settings() -> None:
    doc = build_openapi(
        settings(
            ROOM_NAME_MAX_CHARS="12",
            ROOM_TOPIC_MAX_CHARS="34",
            MAX_ROOMS_PER_USER="5",
            RATE_LIMIT_ROOM_POSTS_PER_MINUTE="7",
        )
    )
    new_room = doc["components"]["schemas"]["NewRoom"]["properties"]
    assert (new_room["name"]["minLength"], new_room["name"]["maxLength"]) == (1, 12)
    assert new_room["topic"]["maxLength"] == 34
    changes = doc["components"]["schemas"]["RoomChanges"]["properties"]
    assert (changes["name"]["maxLength"], changes["topic"]["maxLength"]) == (12, 34)
    assert "Up to 5 rooms per user" in doc["paths"]["/rooms"]["post"]["description"]
    posting = doc["paths"]["/rooms/{room}/messages"]["post"]["description"]
    assert "7 requests per minute per user and room" in posting
    room = next(
        p
        for p in doc["paths"]["/rooms/{room}/members/{user}"]["patch"]["parameters"]
        if p["name"] == "room"
    )
    assert room == {
        "name": "room",
        "in": "path",
        "required": True,
        "description": "The room's id.",
        "schema": {"type": "string", "format": "uuid"},
    }


def test_message_change_limits_come_from_settings() -> None:
    doc = build_openapi(
        settings(MAX_REACTIONS_PER_MESSAGE="3", RATE_LIMIT_MESSAGE_CHANGES_PER_MINUTE="9")
    )
    reactions = doc["paths"]["/rooms/{room}/messages/{message}/reactions/{emoji}"]
    assert "At most 3 different emoji per message" in reactions["put"]["description"]
    edits = doc["paths"]["/rooms/{room}/messages/{message}"]
    for operation in (edits["patch"], edits["delete"], reactions["put"], reactions["delete"]):
        assert "9 requests per minute per user and room" in operation["description"]
    [message] = [p for p in edits["patch"]["parameters"] if p["name"] == "message"]
    assert message["schema"] == {"type": "string", "pattern": "^[0-9]{1,18}$"}


def test_error_schema_matches_api_errors(document: dict[str, Any]) -> None:
    from services.api_service.errors import TooManyRequests, ValidationFailed

    check = validator(document, {"$ref": "#/components/schemas/Error"})
    for error in (
        ValidationFailed("bad", fields={"text": "must not be empty"}),
        TooManyRequests("slow down", retry_after=3),
    ):
        assert check.is_valid(error.body())
        assert (
            models.Error.model_validate(error.body()).model_dump(exclude_defaults=True)
            == error.body()
        )
    assert not check.is_valid({"message": "no code"})


def test_message_schema_matches_the_wire_format(document: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from services.shared.messages import StoredMessage

    check = validator(document, {"$ref": "#/components/schemas/Message"})
    for created in (
        datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2025, 1, 2, tzinfo=UTC),
    ):
        wire = StoredMessage(
            id=12,
            client_id="5d3c8a52-3a8e-4c8b-9a51-6f2d1d3e7b90",
            owner="0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c",
            user_name="Ann",
            text="hi",
            created_at=created,
        ).to_wire()
        errors = [e.message for e in check.iter_errors(wire)]
        assert not errors, (wire, errors)
        assert models.Message.model_validate(wire).model_dump(mode="json", by_alias=True) == wire


# Every status each operation can answer: its own, and what the middleware and the
# bounds in front of it add (408/413 where a body is read, 503 `busy` where a bulkhead or
# the password hasher can refuse, 401 for a token whose account was deleted).
STATUSES = {
    ("post", "/signup"): {201, 400, 408, 409, 413, 422, 429, 503},
    ("post", "/signin"): {200, 400, 401, 408, 413, 429, 503},
    ("get", "/users/me"): {200, 401},
    ("patch", "/users/me"): {200, 400, 401, 408, 413},
    ("delete", "/users/me"): {204, 400, 401, 403, 408, 413, 429, 503},
    ("get", "/messages"): {200, 400, 401, 429, 503},
    ("post", "/messages"): {200, 201, 400, 401, 408, 409, 413, 429},
    ("get", "/rooms"): {200, 401, 429},
    ("post", "/rooms"): {201, 400, 401, 408, 409, 413, 422, 429},
    ("get", "/rooms/public"): {200, 400, 401, 429},
    ("post", "/rooms/direct"): {200, 201, 400, 401, 408, 409, 413, 422, 429},
    ("get", "/rooms/{room}"): {200, 401, 404},
    ("patch", "/rooms/{room}"): {200, 400, 401, 403, 404, 408, 409, 413, 422},
    ("get", "/rooms/{room}/members"): {200, 400, 401, 403, 404, 429},
    ("get", "/rooms/{room}/presence"): {200, 400, 401, 403, 404, 429, 503},
    ("post", "/rooms/{room}/join"): {200, 401, 404, 409},
    ("post", "/rooms/{room}/leave"): {204, 401, 404, 409},
    ("post", "/rooms/{room}/members"): {200, 201, 400, 401, 403, 404, 408, 409, 413, 422, 429},
    ("patch", "/rooms/{room}/members/{user}"): {200, 400, 401, 403, 404, 408, 409, 413},
    ("delete", "/rooms/{room}/members/{user}"): {204, 401, 403, 404, 409},
    ("post", "/rooms/{room}/owner"): {200, 400, 401, 403, 404, 408, 409, 413, 422},
    ("get", "/rooms/{room}/messages"): {200, 400, 401, 403, 404, 429, 503},
    ("post", "/rooms/{room}/messages"): {200, 201, 400, 401, 403, 404, 408, 409, 413, 422, 429},
    ("patch", "/rooms/{room}/messages/{message}"): {200, 400, 401, 403, 404, 408, 409, 413, 429},
    ("delete", "/rooms/{room}/messages/{message}"): {204, 401, 403, 404, 429},
    ("put", "/rooms/{room}/messages/{message}/reactions/{emoji}"): {
        204,
        401,
        403,
        404,
        409,
        422,
        429,
    },
    ("delete", "/rooms/{room}/messages/{message}/reactions/{emoji}"): {
        204,
        401,
        403,
        404,
        409,
        422,
        429,
    },
    ("put", "/rooms/{room}/read"): {204, 400, 401, 403, 404, 408, 413, 422, 429},
    ("get", "/rooms/{room}/receipts"): {200, 401, 403, 404},
    ("get", "/users"): {200, 400, 401, 429},
    ("get", "/healthz"): {200},
    ("get", "/readyz"): {200, 503},
    ("get", "/metrics"): {200},
    ("get", "/openapi.json"): {200},
    ("get", "/docs"): {200},
}


def test_every_status_an_operation_can_answer_is_documented(document: dict[str, Any]) -> None:
    documented = {
        (method, path): {int(status) for status in op["responses"]}
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    assert documented == STATUSES


def test_retryable_refusals_document_retry_after(document: dict[str, Any]) -> None:
    checked = 0
    for (method, path), statuses in STATUSES.items():
        for status in statuses & {429, 503}:
            response = document["paths"][path][method]["responses"][str(status)]
            if "$ref" not in response:  # /readyz's 503 is a readiness report, not a refusal
                continue
            response = resolve(document, response["$ref"])
            header = resolve(document, response["headers"]["Retry-After"]["$ref"])
            assert header["required"] is True
            checked += 1
    assert checked == 26


def test_busy_and_timeout_answers_carry_their_codes(document: dict[str, Any]) -> None:
    def example(path: str, method: str, status: str) -> dict[str, Any]:
        ref = document["paths"][path][method]["responses"][status]["$ref"]
        return resolve(document, ref)["content"]["application/json"]["example"]  # type: ignore[no-any-return]

    for path, method in (("/signup", "post"), ("/signin", "post"), ("/messages", "get")):
        assert example(path, method, "503")["code"] == "busy"
    for path, method in (("/signup", "post"), ("/messages", "post"), ("/users/me", "delete")):
        assert example(path, method, "408")["code"] == "request_timeout"
    readiness = document["components"]["schemas"]["Readiness"]
    assert "degraded" in readiness["properties"]["redis"]["enum"]
    assert "pid" in readiness["required"]


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        assert path is not None
        if path in PAGE_ROUTES or path.startswith(PAGE_PREFIXES):
            continue
        for route in resource:
            if route.method not in ("HEAD", "OPTIONS", "*"):
                found.add((route.method.lower(), path))
    return found


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_document_and_router_list_the_same_operations(document: dict[str, Any]) -> None:
    """Create the real app (nothing connects before start-up) and compare both ways."""
    app = create_app(settings())
    served, documented = router_operations(app), document_operations(document)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


# ---- serving and rendering -----------------------------------------------------------------


def page_app(**env: str) -> web.Application:
    """The real app without its resources: the document and the pages need none."""
    app = create_app(settings(**env))
    app.cleanup_ctx.clear()
    return app


async def test_the_document_and_swagger_ui_are_served_from_this_origin() -> None:
    async with TestClient(TestServer(page_app(MESSAGE_MAX_CHARS="777"))) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        served = await response.json()
        assert served == build_openapi(settings(MESSAGE_MAX_CHARS="777"))
        assert (
            served["components"]["schemas"]["NewMessage"]["properties"]["text"]["maxLength"] == 777
        )

        page = await client.get("/docs")
        assert page.status == 200
        assert page.content_type == "text/html"
        assert page.headers["Content-Security-Policy"] == DOCS_CSP
        html = await page.text()
        assets = [
            "/static/vendor/swagger-ui-bundle.js",
            "/static/vendor/swagger-ui.css",
            "/static/docs.js",
        ]
        for asset in assets:
            assert f'"{asset}"' in html
            fetched = await client.get(asset)
            assert fetched.status == 200, asset
            assert fetched.content_type in ("text/javascript", "application/javascript", "text/css")
        setup = await (await client.get("/static/docs.js")).text()
        assert '"/openapi.json"' in setup and "validatorUrl: null" in setup
    # Nothing from another origin: neither in the page nor allowed by its policy.
    assert "http://" not in html and "https://" not in html
    assert "unsafe" not in DOCS_CSP and "http" not in DOCS_CSP
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= set(VENDOR_FILES)
