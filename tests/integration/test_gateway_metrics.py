"""A gateway measures the latency of its HTTP routes, long-polling included.

WebSocket sessions are not measured.
"""

from __future__ import annotations

import aiohttp

from tests.helpers.metrics import scrape, total
from tests.helpers.rest import User
from tests.helpers.sockets import SocketFactory, open_raw_session

LATENCY = "chat_http_request_duration_seconds_count"
SOCKET_IO = ('service="realtime"', 'route="/socket.io/"')


async def test_gateway_routes_are_measured_and_websocket_sessions_are_not(
    http: aiohttp.ClientSession, gateway_urls: tuple[str, str], new_user, sockets: SocketFactory
) -> None:
    user: User = await new_user()
    gateway = gateway_urls[0]
    before = await scrape(http, gateway)
    websocket = await open_raw_session(http, gateway, user.token)  # one request, no polling
    during = await scrape(http, gateway)
    await websocket.close()
    assert total(during, LATENCY, *SOCKET_IO) == total(before, LATENCY, *SOCKET_IO)

    async with http.get(f"{gateway}/healthz") as response:
        assert response.status == 200
    await sockets.connect(user.token, gateway, transports=["polling"])
    after = await scrape(http, gateway)
    health = ('service="realtime"', 'route="/healthz"', 'method="GET"', 'status="200"')
    polling = (*SOCKET_IO, 'method="GET"', 'status="200"')
    assert total(after, LATENCY, *health) > total(before, LATENCY, *health)
    assert total(after, LATENCY, *polling) > total(before, LATENCY, *polling)
