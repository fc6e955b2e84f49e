"""CORS for the browser client on another origin, and the health endpoints of every process."""

from __future__ import annotations

import json

import pytest

from tests.helpers.limits import ALLOWED_ORIGIN, DISALLOWED_ORIGIN
from tests.helpers.rest import Api
from tests.helpers.stack import ChatStack

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.mark.parametrize("path", ["/messages", "/signin"])
async def test_cors_preflight_from_an_allowed_origin(api: Api, path: str) -> None:
    reply = await api.request("OPTIONS", path, headers={"Origin": ALLOWED_ORIGIN, **PREFLIGHT})
    assert reply.status in (200, 204), reply.text
    assert reply.headers.get("Access-Control-Allow-Origin") in (ALLOWED_ORIGIN, "*")
    allowed_methods = reply.headers.get("Access-Control-Allow-Methods", "").upper()
    assert "POST" in allowed_methods
    allowed_headers = reply.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers


async def test_cors_preflight_from_a_disallowed_origin_gets_no_allow_origin(api: Api) -> None:
    reply = await api.request(
        "OPTIONS", "/messages", headers={"Origin": DISALLOWED_ORIGIN, **PREFLIGHT}
    )
    assert reply.headers.get("Access-Control-Allow-Origin") not in (DISALLOWED_ORIGIN, "*")


async def test_cors_header_on_an_actual_response(api: Api, new_user) -> None:
    user = await new_user()
    reply = await api.request(
        "GET", "/users/me", token=user.token, headers={"Origin": ALLOWED_ORIGIN}
    )
    assert reply.status == 200
    assert reply.headers.get("Access-Control-Allow-Origin") in (ALLOWED_ORIGIN, "*")


async def test_socketio_handshake_cors_through_the_load_balancer(lb_api: Api, new_user) -> None:
    """A browser on the client's origin may open the polling handshake; another may not."""
    user = await new_user()
    params = {"EIO": "4", "transport": "polling"}
    ok = await lb_api.request(
        "GET", "/socket.io/", params=params, token=user.token, headers={"Origin": ALLOWED_ORIGIN}
    )
    assert ok.status == 200, ok.text
    assert ok.headers.get("Access-Control-Allow-Origin") in (ALLOWED_ORIGIN, "*")
    assert ok.text.startswith("0{"), ok.text  # Engine.IO OPEN packet
    sid = json.loads(ok.text[1:])["sid"]
    # Close the half-open session we created (Engine.IO CLOSE packet) instead of leaving
    # it to the server's ping timeout.
    closed = await lb_api.request(
        "POST",
        "/socket.io/",
        params={**params, "sid": sid},
        data="1",
        headers={"Origin": ALLOWED_ORIGIN, "Content-Type": "text/plain;charset=UTF-8"},
    )
    assert closed.status == 200, closed.text

    bad = await lb_api.request(
        "GET",
        "/socket.io/",
        params=params,
        token=user.token,
        headers={"Origin": DISALLOWED_ORIGIN},
    )
    assert bad.headers.get("Access-Control-Allow-Origin") not in (DISALLOWED_ORIGIN, "*")
    assert bad.status >= 400 or '"sid"' not in bad.text


def _service_urls(stack: ChatStack) -> list[tuple[str, str]]:
    urls = [("api", stack.api_url)]
    urls += [(f"gateway-{i + 1}", url) for i, url in enumerate(stack.gateway_urls)]
    return urls


async def test_health_and_readiness_of_every_service(api: Api, chat_stack: ChatStack) -> None:
    if chat_stack.external and not chat_stack.gateway_urls:
        pytest.skip("gateway health needs CHAT_GATEWAY_URLS for an external stack")
    for name, url in _service_urls(chat_stack):
        health = await api.request("GET", "/healthz", base_url=url)
        assert (health.status, health.body) == (200, {"status": "ok"}), (name, health.text)
        ready = await api.request("GET", "/readyz", base_url=url)
        assert ready.status == 200, (name, ready.text)
        assert ready.body["status"] == "ready", (name, ready.body)


async def test_health_through_the_load_balancer(lb_api: Api) -> None:
    health = await lb_api.request("GET", "/healthz")
    assert (health.status, health.body) == (200, {"status": "ok"})
