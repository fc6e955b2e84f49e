"""The API middleware seen from outside: CORS preflights, slow bodies, errors, headers."""

from __future__ import annotations

import pytest

from .harness import ALLOWED_ORIGIN, DISALLOWED_ORIGIN, Api, assert_error

FIXED_ALLOWED_HEADERS = {"authorization", "content-type", "x-request-id"}


def _cors_headers(headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower().startswith("access-control-")}


async def test_a_preflight_is_answered_with_the_fixed_header_list(api: Api) -> None:
    """A browser asking to send any header it likes is told the fixed list only."""
    reply = await api.request(
        "OPTIONS",
        "/messages",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-forwarded-for,x-evil",
        },
    )
    assert reply.status == 204, reply.text
    allowed = {h.strip().lower() for h in reply.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == FIXED_ALLOWED_HEADERS


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "TRACE"])
async def test_a_preflight_for_a_method_not_allowed_is_refused(api: Api, method: str) -> None:
    reply = await api.request(
        "OPTIONS",
        "/messages",
        headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": method},
    )
    assert assert_error(reply, 403)
    assert reply.body["code"] == "cors_forbidden"
    assert _cors_headers(reply.headers) == {}


async def test_a_preflight_from_an_origin_not_allowed_is_refused_without_cors_headers(api: Api) -> None:
    reply = await api.request(
        "OPTIONS",
        "/messages",
        headers={
            "Origin": DISALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert assert_error(reply, 403)
    assert reply.body["code"] == "cors_forbidden"
    assert _cors_headers(reply.headers) == {}
