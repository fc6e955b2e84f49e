"""The API stays in rotation while Redis is down: posting needs only PostgreSQL."""

from __future__ import annotations

import aiohttp
import pytest

from stack import free_port
from tests.helpers.processes import extra_process
from tests.helpers.rest import Api, sign_up_and_in
from tests.helpers.stack import ChatStack


@pytest.mark.security
async def test_the_api_is_ready_and_posts_while_redis_is_unreachable(
    chat_stack: ChatStack, http: aiohttp.ClientSession, attack_report
) -> None:
    closed = free_port()  # nothing listens there: Redis is "down" for this process only
    env = {"REDIS_URL": f"redis://127.0.0.1:{closed}/0", "RATE_LIMIT_REDIS_TIMEOUT_SECONDS": "0.2"}
    async with extra_process(chat_stack, "services.api_service", env, "api-no-redis") as url:
        api = Api(http, url)
        ready = await api.request("GET", "/readyz")
        user = await sign_up_and_in(api)
        post = await api.post_message(user, "posted while Redis is down")

        assert ready.status == 200, ready.text
        assert {**ready.body, "pid": None} == {
            "status": "ready",
            "postgres": "ok",
            "redis": "degraded",
            "pid": None,
        }
        assert post.status == 201, post.text
        attack_report(
            "Redis down, API readiness",
            f"/readyz {ready.status} {ready.body}; sign-up and post answered {post.status}",
        )
