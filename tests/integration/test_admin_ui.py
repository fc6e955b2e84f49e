"""The Socket.IO Admin UI's sign-in is throttled per client address on a real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import socketio

from tests.helpers.limits import CONNECT_TIMEOUT
from tests.helpers.processes import extra_process
from tests.helpers.stack import ChatStack

pytestmark = [pytest.mark.security, pytest.mark.timeout(90)]

USERNAME, PASSWORD = "admin", "correct horse battery staple"
MAX_FAILURES = 3


@pytest.fixture
async def admin_gateway(chat_stack: ChatStack) -> AsyncIterator[str]:
    if chat_stack.external:
        pytest.skip("starts a gateway of its own")
    env = {
        "ADMIN_UI_USERNAME": USERNAME,
        "ADMIN_UI_PASSWORD": PASSWORD,
        "ADMIN_UI_MAX_FAILURES": str(MAX_FAILURES),
    }
    async with extra_process(chat_stack, "services.realtime_service", env, "gateway-admin") as url:
        yield url


async def admin_sign_in(
    url: str, password: str, local_addr: str = "127.0.0.1", forwarded_for: str | None = None
) -> str:
    """Connect to `/admin` as the Admin UI does; "ok" or the refusal's message."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local_addr, 0)))
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=http)
    refusals: list[str] = []

    async def on_error(data: object) -> None:
        refusals.append(str(data.get("message") if isinstance(data, dict) else data))

    client.on("connect_error", on_error, namespace="/admin")
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    try:
        await client.connect(
            url,
            namespaces=["/admin"],
            auth={"username": USERNAME, "password": password},
            headers=headers,
            transports=["websocket"],
            wait_timeout=CONNECT_TIMEOUT,
        )
        return "ok"
    except socketio.exceptions.ConnectionError as exc:
        return " | ".join(refusals) or str(exc)
    finally:
        await client.disconnect()
        await http.close()


async def test_admin_sign_in_is_throttled_per_client_address(
    admin_gateway: str, attack_report: Callable[[str, str], None]
) -> None:
    guesses = [
        await admin_sign_in(admin_gateway, f"guess {i}", "127.0.0.2") for i in range(MAX_FAILURES)
    ]
    assert all("authentication failed" in answer for answer in guesses), guesses

    # Locked out now, even with the right password and a forged X-Forwarded-For
    # (127.0.0.2 is not a trusted proxy, so its header is not believed).
    locked = [
        await admin_sign_in(admin_gateway, PASSWORD, "127.0.0.2"),
        await admin_sign_in(admin_gateway, PASSWORD, "127.0.0.2", forwarded_for="203.0.113.9"),
    ]
    assert all("too many failed sign-ins" in answer for answer in locked), locked
    assert await admin_sign_in(admin_gateway, PASSWORD, "127.0.0.3") == "ok", (
        "other addresses still sign in"
    )
    attack_report(
        "admin UI password guessing",
        f"{MAX_FAILURES} guesses per address and window, then refused (also with a forged "
        "X-Forwarded-For)",
    )
