"""A stack started without JWT_SECRET: a random shared secret, never the old public one."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.rest import Api, reissued, sign_up_and_in
from tests.helpers.sockets import SocketFactory
from tests.helpers.stack import ChatStack, local_chat_stack

# The secret every installation accepted when JWT_SECRET was unset: it is in the
# project's history, so anyone can sign tokens with it.
OLD_PUBLIC_DEFAULT = "dev-only-insecure-jwt-secret-change-me"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-volume") / "jwt-secret"


@pytest.fixture(scope="module")
async def unconfigured_stack(secret_file: Path) -> AsyncIterator[ChatStack]:
    """The API and two gateways with JWT_SECRET unset, sharing one secret file."""
    env = {"JWT_SECRET": "", "JWT_SECRET_FILE": str(secret_file), "RATE_LIMIT_AUTH_PER_MINUTE": "0"}
    async with local_chat_stack("nosecret", env) as stack:
        yield stack


@pytest.mark.security
async def test_a_token_forged_with_the_old_public_default_is_refused(
    unconfigured_stack: ChatStack, secret_file: Path, attack_report
) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        api = Api(http, unconfigured_stack.api_url)
        user = await sign_up_and_in(api)
        forged = reissued(user.token, OLD_PUBLIC_DEFAULT)

        assert (await api.request("GET", "/users/me", token=user.token)).status == 200
        refused_me = await api.request("GET", "/users/me", token=forged)
        refused_history = await api.request("GET", "/messages", token=forged)
        assert (refused_me.status, refused_history.status) == (401, 401)

        sockets = SocketFactory(unconfigured_stack.lb_url)
        try:
            # The gateways read the secret the API created: the real token connects
            # through each of them, the forged one through none.
            for gateway in unconfigured_stack.gateway_urls:
                assert (await sockets.connect(user.token, gateway)).sio.connected
                reason = await sockets.refused(forged, gateway)
                assert "invalid token" in reason, reason
        finally:
            await sockets.close_all()

    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret_file.read_text().strip() != OLD_PUBLIC_DEFAULT
    attack_report(
        "token forged with the old default secret",
        f"REST {refused_me.status}/{refused_history.status}, "
        f"{len(unconfigured_stack.gateway_urls)} gateways refused it",
    )
