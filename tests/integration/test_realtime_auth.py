"""Socket.IO handshake authentication: every accepted way in, and every refusal."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.helpers.rest import Api, expired_token, reissued
from tests.helpers.sockets import SocketFactory, by_owner
from tests.helpers.stack import ChatStack


@pytest.fixture(params=["load-balancer", "gateway-2"])
def target_url(request: pytest.FixtureRequest, chat_stack: ChatStack) -> str:
    """Refusals must hold on the public entry point and on a gateway reached directly."""
    if request.param == "load-balancer":
        return chat_stack.lb_url
    if len(chat_stack.gateway_urls) < 2:
        pytest.skip("needs direct gateway URLs (CHAT_GATEWAY_URLS)")
    return chat_stack.gateway_urls[1]


def _assert_clear_refusal(reason: str, *expected: str) -> None:
    lowered = reason.lower()
    assert "unauthorized" in lowered or "token" in lowered, reason
    for word in expected:
        assert word in lowered, reason


@pytest.mark.parametrize("transports", [None, ["websocket"]], ids=["default", "websocket"])
async def test_connect_without_token_is_refused(
    sockets: SocketFactory, target_url: str, transports: list[str] | None
) -> None:
    reason = await sockets.refused(None, target_url, transports=transports)
    _assert_clear_refusal(reason, "missing")


@pytest.mark.parametrize("auth_style", ["header", "auth", "query"])
async def test_connect_with_garbage_token_is_refused(
    sockets: SocketFactory, target_url: str, auth_style: str
) -> None:
    reason = await sockets.refused("not.a.jwt", target_url, auth_style=auth_style)
    _assert_clear_refusal(reason)


async def test_connect_with_expired_token_is_refused(
    sockets: SocketFactory, target_url: str, new_user, jwt_secret: str
) -> None:
    user = await new_user()
    # Control: the very same claims, re-signed with the real secret, are accepted.
    ok = await sockets.connect(reissued(user.token, jwt_secret), target_url)
    assert ok.sio.connected
    reason = await sockets.refused(expired_token(user.token, jwt_secret), target_url)
    _assert_clear_refusal(reason, "expired")


async def test_a_token_accepted_once_is_refused_once_it_has_expired(
    sockets: SocketFactory, target_url: str, new_user, jwt_secret: str
) -> None:
    """The gateway remembers the tokens it verified; a reconnect still meets their expiry."""
    user = await new_user()
    expires = int(time.time()) + 2
    token = reissued(user.token, jwt_secret, exp=expires)
    first = await sockets.connect(token, target_url, transports=["websocket"])
    assert first.sio.connected
    await first.sio.disconnect()
    while time.time() < expires:  # the token's own clock  # wait-ok
        await asyncio.sleep(0.1)  # wait-ok
    reason = await sockets.refused(token, target_url, transports=["websocket"])
    _assert_clear_refusal(reason, "expired")


async def test_connect_with_token_signed_by_another_secret_is_refused(
    sockets: SocketFactory, target_url: str, new_user
) -> None:
    user = await new_user()
    forged = reissued(user.token, f"wrong-secret-{uuid.uuid4().hex}")
    reason = await sockets.refused(forged, target_url, auth_style="auth")
    _assert_clear_refusal(reason)


@pytest.mark.parametrize("auth_style", ["header", "auth", "query"])
@pytest.mark.parametrize("transports", [None, ["websocket"]], ids=["default", "websocket"])
async def test_each_token_style_is_accepted_and_receives_messages(
    api: Api,
    sockets: SocketFactory,
    new_user,
    auth_style: str,
    transports: list[str] | None,
) -> None:
    user = await new_user()
    sock = await sockets.connect(user.token, auth_style=auth_style, transports=transports)
    assert sock.sio.connected
    sent = await api.send(user, f"token via {auth_style}")
    got = await sock.next_message(by_owner(user))
    assert got["_id"] == sent["_id"]
