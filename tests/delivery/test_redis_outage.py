"""Redis down: sign-up, sign-in and posting keep working, and nothing posted is lost.

Posting needs only PostgreSQL; the outbox relay publishes what was committed once
Redis is back. The rate limits, kept in Redis, fall back to a per-process counter while
it is away (still limiting), log the switch once each way, and a Redis restart (stale
pooled connections) costs no request a 500.

The stack runs on a PRIVATE redis-server that the test stops and starts again; the
machine's shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.helpers.limits import ADMIN_URL
from tests.helpers.processes import PrivateRedis
from tests.helpers.rest import Api, User, new_user
from tests.helpers.sockets import ChatSocket
from tests.helpers.stack import ARTIFACTS, Running, call_maybe_async, running_stack

pytestmark = [pytest.mark.security, pytest.mark.timeout(180)]

MESSAGES_PER_MINUTE = 40
CONVERGE_SECONDS = 45.0
FALLBACK_LOG = "rate limits: Redis unreachable"
RECOVERY_LOG = "rate limits: Redis is back"


@pytest.fixture(scope="module")
async def outage_redis() -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis(ARTIFACTS / "delivery-redis-outage")
    await call_maybe_async(redis.start)
    try:
        yield redis
    finally:
        await call_maybe_async(redis.close)


@pytest.fixture(scope="module")
async def outage_stack(outage_redis: PrivateRedis) -> AsyncIterator[Running]:
    env = {
        "RATE_LIMIT_MESSAGES_PER_MINUTE": str(MESSAGES_PER_MINUTE),
        "RATE_LIMIT_AUTH_PER_MINUTE": "1000",
        "RATE_LIMIT_REDIS_RETRY_SECONDS": "0.5",
    }
    async with running_stack("redis-outage", ADMIN_URL, outage_redis.url, env) as running:
        yield running


async def post(api: Api, user: User, text: str) -> tuple[int, int | None]:
    """(status, _id); a connection failure counts as status 0."""
    try:
        reply = await api.post_message(user, text)
    except (OSError, TimeoutError):
        return 0, None
    stored = int(reply.body["_id"]) if reply.status in (200, 201) else None
    return reply.status, stored


async def post_many(api: Api, user: User, count: int, label: str) -> list[tuple[int, int | None]]:
    results: list[tuple[int, int | None]] = []
    for start in range(0, count, 5):
        batch = range(start, min(start + 5, count))
        results += await asyncio.gather(*(post(api, user, f"{label} {i}") for i in batch))
    return results


async def api_metric(api: Api, name: str) -> float | None:
    """The value of an unlabelled series on the API's /metrics, None when it is absent."""
    reply = await api.request("GET", "/metrics")
    for line in reply.text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


async def counting_in_redis(api: Api) -> bool:
    return await api_metric(api, "chat_rate_limit_in_memory") != 1.0


async def newest_id(api: Api, user: User) -> int:
    reply = await api.request("GET", "/messages", token=user.token, params={"limit": "1"})
    assert reply.status == 200, reply.text
    return int(reply.body[-1]["_id"]) if reply.body else 0


async def test_posting_survives_a_redis_outage_and_everything_is_delivered(
    outage_stack: Running, outage_redis: PrivateRedis, attack_report
) -> None:
    s = outage_stack
    api = s.api
    reader, poster, flooder = [await new_user(api) for _ in range(3)]
    receiver = ChatSocket("lb", s.lb_url, reader, api)
    receiver.last_id = await newest_id(api, reader)
    acknowledged: set[int] = set()
    try:
        await receiver.connect()
        before = await post_many(api, poster, 3, "before")  # pooled connections to Redis exist
        assert all(status == 201 for status, _ in before), before

        await asyncio.to_thread(outage_redis.stop)
        try:
            email, password = (
                f"outage-{uuid.uuid4().hex[:10]}@example.com",
                "pw-" + uuid.uuid4().hex,
            )
            signup = await api.signup("During Outage", email, password)
            signin = await api.signin(email, password)
            during = await post_many(api, poster, 20, "during")
            in_memory = await api_metric(api, "chat_rate_limit_in_memory")
            # The per-process fallback still limits: one user over the limit gets 429s.
            flood = await post_many(api, flooder, MESSAGES_PER_MINUTE + 20, "flood")
        finally:
            await asyncio.to_thread(outage_redis.start)
        # A writer posting at a person's pace until the limiter has found Redis again.
        after: list[tuple[int, int | None]] = []
        deadline = time.monotonic() + 20
        while not after or not await counting_in_redis(api):
            assert time.monotonic() < deadline, "limits never went back to Redis"
            after.append(await post(api, poster, f"after {len(after)}"))
            await asyncio.sleep(0.1)  # wait-ok: the writer's pace

        failed_during = [status for status, _ in during if status != 201]
        failed_after = [status for status, _ in after if status != 201]
        flood_statuses = sorted({status for status, _ in flood})
        refused = sum(status == 429 for status, _ in flood)
        acknowledged = {i for _, i in before + during + after + flood if i is not None}
        deadline = time.monotonic() + CONVERGE_SECONDS
        try:
            await receiver.wait_ids(acknowledged, timeout=max(0.1, deadline - time.monotonic()))
        except AssertionError:
            pass  # reported as lost below
        lost = receiver.lost(acknowledged)
        attack_report(
            "posts lost or failed while Redis is down",
            f"{len(failed_during)} of {len(during)} posts failed during the outage, "
            f"{len(failed_after)} of {len(after)} right after the restart, {len(lost)} lost; "
            f"sign-up {signup.status}, sign-in {signin.status}; "
            f"per-process fallback refused {refused} of {len(flood)} flood posts",
        )
        assert (signup.status, signin.status) == (201, 200), (signup.text, signin.text)
        assert not failed_during, f"posts failed while Redis was down: {failed_during}"
        assert not failed_after, f"posts failed after Redis restarted: {failed_after}"
        assert in_memory == 1.0
        assert flood_statuses == [201, 429], flood_statuses
        assert not lost, f"{sorted(lost)[:20]} never reached the reader: {receiver.summary()}"
        log = (s.log_dir / "api.log").read_text(errors="replace")
        assert log.count(FALLBACK_LOG) == 1 and log.count(RECOVERY_LOG) == 1, (
            "switch not logged once"
        )
    finally:
        await receiver.close()


async def test_a_redis_restart_costs_no_request_and_no_fallback(
    outage_stack: Running, outage_redis: PrivateRedis
) -> None:
    """Connections pooled before a restart are dead after it: one retry replaces them."""
    api = outage_stack.api
    users = [await new_user(api) for _ in range(5)]
    warm = await asyncio.gather(*(post(api, u, "warm") for u in users for _ in range(2)))
    assert all(status == 201 for status, _ in warm), warm
    fallbacks = await api_metric(api, "chat_rate_limit_fallback_total")

    await asyncio.to_thread(outage_redis.stop)
    await asyncio.to_thread(outage_redis.start)
    after = await asyncio.gather(*(post(api, u, "after restart") for u in users for _ in range(4)))

    assert [status for status, _ in after if status != 201] == []
    assert await api_metric(api, "chat_rate_limit_fallback_total") == fallbacks
