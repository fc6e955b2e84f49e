"""Fuzz every operation of the live API with schemathesis against its own `/openapi.json`.

For each operation schemathesis runs the documented examples, the coverage phase (edge
and invalid values of every field, missing fields, wrong types) and CONTRACT_MAX_EXAMPLES
random cases, all with a real user's bearer token, and checks each response:

* not_a_server_error           no 5xx, ever
* status_code_conformance      the status is documented for the operation
* content_type_conformance     the Content-Type is the documented one
* response_schema_conformance  the body matches the documented schema
* response_headers_conformance documented required headers (X-Request-ID, Retry-After) are there

A failure shows the request as a curl command; the session ends with a per-operation
summary (cases, statuses, failures).
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.contract import SUMMARY_NOTES, TALLY, OperationTally
from tests.helpers.rest import User, unique_email
from tests.helpers.stack import ChatStack

MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "30"))
# Random unless pinned, so that every run explores new inputs; the summary prints it.
SEED = int(os.environ.get("CONTRACT_SEED") or random.SystemRandom().randrange(2**32))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Every operation the document must describe (GET /openapi.json: by the happy-path test).
EXPECTED_OPERATIONS = {
    "POST /signup",
    "POST /signin",
    "GET /users/me",
    "PATCH /users/me",
    "DELETE /users/me",
    "GET /messages",
    "POST /messages",
    "GET /rooms",
    "POST /rooms",
    "GET /rooms/public",
    "POST /rooms/direct",
    "GET /rooms/{room}",
    "PATCH /rooms/{room}",
    "GET /rooms/{room}/members",
    "GET /rooms/{room}/presence",
    "POST /rooms/{room}/join",
    "POST /rooms/{room}/leave",
    "POST /rooms/{room}/members",
    "PATCH /rooms/{room}/members/{user}",
    "DELETE /rooms/{room}/members/{user}",
    "POST /rooms/{room}/owner",
    "GET /rooms/{room}/messages",
    "POST /rooms/{room}/messages",
    "PATCH /rooms/{room}/messages/{message}",
    "DELETE /rooms/{room}/messages/{message}",
    "PUT /rooms/{room}/messages/{message}/reactions/{emoji}",
    "DELETE /rooms/{room}/messages/{message}/reactions/{emoji}",
    "PUT /rooms/{room}/read",
    "GET /rooms/{room}/receipts",
    "GET /users",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
    "GET /docs",
}
# Success would delete the fuzzer's own account (it never knows the password); the
# integration suite covers it (tests/integration/test_account_deletion.py).
NEVER_SUCCEEDS_UNDER_FUZZING = {"DELETE /users/me"}


@pytest.fixture(scope="session")
def api_schema(contract_stack: ChatStack, contract_user: User) -> Any:
    """The schema as the live API serves it; loading it is part of the test.

    CONTRACT_TARGET=lb fuzzes through the load balancer (the public origin) instead of
    the API process directly.
    """
    base_url = (
        contract_stack.lb_url
        if os.environ.get("CONTRACT_TARGET") == "lb"
        else contract_stack.api_url
    )
    SUMMARY_NOTES.append(
        f"target {base_url}, seed {SEED} (CONTRACT_SEED), {MAX_EXAMPLES} examples "
        "(CONTRACT_MAX_EXAMPLES)"
    )
    config = SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "auth": {"openapi": {"bearerAuth": {"bearer": contract_user.token}}},
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        }
    )
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


def call_and_validate(case: Any, headers: dict[str, str]) -> Any:
    """`case.call_and_validate`, split so that every answer lands in the summary."""
    tally = TALLY.setdefault(case.operation.label, OperationTally())
    response = case.call(headers=headers, timeout=30)
    tally.statuses[response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except BaseException as exc:
        tally.failures.append(f"{case.as_curl_command(headers=headers)}\n{exc}")
        raise
    return response


@pytest.mark.timeout(300)
@schema.parametrize()
def test_api_conforms_to_its_openapi_document(case: Any, contract_user: User) -> None:
    call_and_validate(case, contract_user.auth)


def test_the_happy_path_conforms(api_schema: Any, contract_user: User) -> None:
    """Random input rarely signs in, so walk the client's own flow through the same checks."""
    email, password = unique_email("flow"), "correct horse battery staple"
    signup = api_schema["/signup"]["POST"].Case(
        body={"name": "  Flow  ", "email": email, "password": password}
    )
    assert call_and_validate(signup, {}).status_code == 201
    again = api_schema["/signup"]["POST"].Case(
        body={"name": "Flow", "email": email.upper(), "password": password}
    )
    assert call_and_validate(again, {}).status_code == 409
    signin = api_schema["/signin"]["POST"].Case(body={"email": email, "password": password})
    token = call_and_validate(signin, {}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    wrong = api_schema["/signin"]["POST"].Case(body={"email": email, "password": password + "!"})
    assert call_and_validate(wrong, {}).status_code == 401
    assert call_and_validate(api_schema["/users/me"]["GET"].Case(), auth).status_code == 200
    body = {"id": str(uuid.uuid4()), "text": "<b>hi</b><script>x</script>", "owner": "forged"}
    post = api_schema["/messages"]["POST"].Case(body=body)
    stored = call_and_validate(post, auth).json()
    assert (
        call_and_validate(api_schema["/messages"]["POST"].Case(body=body), auth).status_code == 200
    )
    history = api_schema["/messages"]["GET"].Case(query={"after": str(int(stored["_id"]) - 1)})
    assert call_and_validate(history, auth).json()[0]["_id"] == stored["_id"]
    huge = api_schema["/messages"]["POST"].Case(
        body={"id": str(uuid.uuid4()), "text": "x" * 70_000}
    )
    assert call_and_validate(huge, auth).status_code in (400, 413)
    # schemathesis never fuzzes the URL it loaded the schema from; check that answer here.
    served = call_and_validate(api_schema["/openapi.json"]["GET"].Case(), {}).json()
    assert served == api_schema.raw_schema


def test_the_rooms_flow_conforms(api_schema: Any, contract_user: User) -> None:
    """Random room ids are never the fuzzer's rooms: walk every room route with real ones."""
    auth = contract_user.auth

    def call(path: str, method: str, expected: int, **case: Any) -> Any:
        reply = call_and_validate(api_schema[path][method].Case(**case), auth)
        assert reply.status_code == expected, (method, path, reply.status_code, reply.text)
        return reply.json() if reply.content else None

    def other_user() -> str:
        email, password = unique_email("room"), "correct horse battery staple"
        body = {"name": "Other", "email": email, "password": password}
        return str(
            call_and_validate(api_schema["/signup"]["POST"].Case(body=body), {}).json()["_id"]
        )

    bo, cy = other_user(), other_user()
    room = call("/rooms", "POST", 201, body={"kind": "public", "name": "Flow", "members": [bo]})
    ids = {"room": room["id"]}
    call("/rooms", "GET", 200)
    call("/rooms/public", "GET", 200, query={"q": "flow", "limit": 1})
    call("/rooms/{room}", "GET", 200, path_parameters=ids)
    call("/rooms/{room}", "PATCH", 200, path_parameters=ids, body={"topic": "Testing"})
    call("/rooms/{room}/members", "GET", 200, path_parameters=ids, query={"limit": 1})
    call("/rooms/{room}/presence", "GET", 200, path_parameters=ids, query={"limit": 1})
    call("/rooms/{room}/members", "POST", 201, path_parameters=ids, body={"userId": cy})
    member = {**ids, "user": cy}
    call(
        "/rooms/{room}/members/{user}", "PATCH", 200, path_parameters=member, body={"role": "admin"}
    )
    call("/rooms/{room}/members/{user}", "DELETE", 204, path_parameters=member)
    message = {"id": str(uuid.uuid4()), "text": "hello room"}
    posted = call("/rooms/{room}/messages", "POST", 201, path_parameters=ids, body=message)
    reply = {"id": str(uuid.uuid4()), "text": "a reply", "replyTo": posted["_id"]}
    answer = call("/rooms/{room}/messages", "POST", 201, path_parameters=ids, body=reply)
    one = {**ids, "message": posted["_id"]}
    call("/rooms/{room}/messages/{message}", "PATCH", 200, path_parameters=one, body=reply)
    reaction = "/rooms/{room}/messages/{message}/reactions/{emoji}"
    call(reaction, "PUT", 204, path_parameters={**one, "emoji": "👍"})
    call(reaction, "DELETE", 204, path_parameters={**one, "emoji": "👍"})
    gone = {**ids, "message": answer["_id"]}
    call("/rooms/{room}/messages/{message}", "DELETE", 204, path_parameters=gone)
    call("/rooms/{room}/messages", "GET", 200, path_parameters=ids, query={"limit": 10})
    read = {"lastRead": posted["_id"]}
    call("/rooms/{room}/read", "PUT", 204, path_parameters=ids, body=read)
    call("/rooms/{room}", "PATCH", 200, path_parameters=ids, body={"receipts": True})
    call("/rooms/{room}/receipts", "GET", 200, path_parameters=ids)
    call("/users/me", "PATCH", 200, body={"sendReceipts": True})
    call("/rooms/{room}/owner", "POST", 200, path_parameters=ids, body={"userId": bo})
    call("/rooms/{room}/leave", "POST", 204, path_parameters=ids)
    call("/rooms/{room}/join", "POST", 200, path_parameters=ids)
    call("/rooms/direct", "POST", 201, body={"userId": cy})
    call("/users", "GET", 200, query={"name": "Ot"})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/signup", {"name": "Nul\u0000Name", "email": "nul@example.com", "password": "12345678"}),
        ("/signup", {"name": "Nul", "email": "nul\u0000@example.com", "password": "12345678"}),
        ("/signin", {"email": "nul\u0000@example.com", "password": "12345678"}),
        ("/messages", {"id": "6f1c1f7e-4b7e-4f38-9a0e-0d5c9f0f1a2b", "text": "nul\u0000text"}),
    ],
)
def test_nul_characters_are_client_errors(
    api_schema: Any, contract_user: User, path: str, body: Any
) -> None:
    """PostgreSQL text cannot hold U+0000; the fuzzer once got a 500 for it (keep it found)."""
    call_and_validate(api_schema[path]["POST"].Case(body=body), contract_user.auth)


def test_every_operation_was_fuzzed_and_succeeded_at_least_once() -> None:
    """Guards the guard: a run where the token never worked would pass on 401s alone."""
    if not TALLY:
        pytest.skip("the schemathesis test did not run in this session")
    assert set(TALLY) == EXPECTED_OPERATIONS
    never_ok = sorted(
        label
        for label, tally in TALLY.items()
        if label not in NEVER_SUCCEEDS_UNDER_FUZZING
        and not any(200 <= status < 300 for status in tally.statuses)
    )
    assert not never_ok, {label: dict(TALLY[label].statuses) for label in never_ok}
