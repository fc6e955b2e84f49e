"""Hostile input gets a clear 4xx JSON error at once, never a 500.

Each probe is one an attacker sends to find a crash: numbers Python refuses to parse,
characters the OS or PostgreSQL cannot take, identifiers of the wrong type. A 500
means an unhandled exception, a traceback in the log and, often, a way to make the
service do expensive work.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.helpers.rest import Api, Reply, assert_error, make_token

HUGE = "1" * 4301  # one digit past Python's int() limit for strings


@pytest.mark.security
async def test_hostile_input_gets_a_clear_client_error(
    api: Api, new_user, jwt_secret: str, attack_report
) -> None:
    user = await new_user()
    now = int(time.time())
    odd_subject = make_token(
        jwt_secret, {"sub": "not-a-uuid", "name": "Ann", "iat": now, "exp": now + 60}
    )
    injected = make_token(
        jwt_secret, {"sub": "' OR 1=1 --", "name": "Ann", "iat": now, "exp": now + 60}
    )
    probes: list[tuple[str, Reply, int | tuple[int, ...]]] = [
        # Through the load balancer a URL over 4 KB is refused before the API (414).
        (
            "limit of 4,301 digits",
            await api.request("GET", f"/messages?limit={HUGE}", token=user.token),
            (400, 414),
        ),
        (
            "before of 4,301 digits",
            await api.request("GET", f"/messages?before={HUGE}", token=user.token),
            (400, 414),
        ),
        ("NUL in a static path", await api.request("GET", "/static/style.css%00.js"), 404),
        (
            "static name longer than the OS allows",
            await api.request("GET", "/static/" + "a" * 5000),
            (404, 414),
        ),
        (
            "token whose sub is not a UUID",
            await api.request("GET", "/users/me", token=odd_subject),
            401,
        ),
        ("token whose sub is SQL", await api.request("GET", "/messages", token=injected), 401),
        (
            "post with a non-UUID sub",
            await api.request(
                "POST", "/messages", token=odd_subject, json={"id": str(uuid.uuid4()), "text": "hi"}
            ),
            401,
        ),
        (
            "message id of 4,301 digits",
            await api.request(
                "POST", "/messages", token=user.token, data=f'{{"id": {HUGE}, "text": "x"}}'
            ),
            400,
        ),
        (
            "JSON nested 5,000 deep",
            await api.request(
                "POST",
                "/messages",
                token=user.token,
                data='{"id": ' + "[" * 5000 + "]" * 5000 + "}",
            ),
            400,
        ),
        (
            "lone surrogate in JSON",
            await api.request(
                "POST",
                "/signup",
                data='{"name": "a\\ud800b", "email": "s@x.io", "password": "password123"}',
            ),
            400,
        ),
        (
            "NUL in a confirmation password",
            await api.request(
                "DELETE", "/users/me", token=user.token, json={"password": "a\u0000b"}
            ),
            400,
        ),
    ]
    server_errors = [name for name, reply, _ in probes if reply.status >= 500]
    for name, reply, expected in probes:
        allowed = expected if isinstance(expected, tuple) else (expected,)
        assert reply.status in allowed, (name, reply.status, reply.text)
        assert_error(reply, reply.status)
    attack_report(
        "hostile input (REST)", f"{len(probes)} probes, {len(server_errors)} answered 5xx"
    )
