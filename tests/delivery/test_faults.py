"""Fault injection: nothing acknowledged is lost while Redis, a gateway, an API process or
PostgreSQL fails under a steady writer.

Every scenario runs the same way: five counting clients (two on each gateway replica,
one through the load balancer; each reconnects with `lastId` and refetches over REST
when told `recovered: false`) plus one per replica that connects right after the
fault, a writer posting 20 messages/s that retries a failed POST with the same client
id until acknowledged, and one fault in the middle. The scenario prints one line of
counts and asserts that every client ends up with every acknowledged message
(duplicates are reported, not failed).

Redis and PostgreSQL are PRIVATE servers on free ports (see conftest.py): restarting the
machine's shared ones would break everybody else's work. `make test-faults` runs only
this file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from stack import REPO_ROOT, ManagedProcess, free_port
from stack.process import wait_http_ok
from tests.helpers.delivery import FaultWorld, Writer, report
from tests.helpers.rest import new_user
from tests.helpers.sockets import ChatSocket, wait_gateway_holding

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

DOWN_SECONDS = 1.5  # how long a restarted server stays down
CONVERGE_SECONDS = 45.0  # bound for every client to hold every acknowledged message


async def newest_id(world: FaultWorld, user) -> int:
    reply = await world.stack.api.request(
        "GET", "/messages", token=user.token, params={"limit": "1"}
    )
    assert reply.status == 200, reply.text
    return int(reply.body[-1]["_id"]) if reply.body else 0


async def run_scenario(
    world: FaultWorld,
    name: str,
    fault: Callable[[list[ChatSocket]], Awaitable[None]],
    route: Callable[[int], str | None] | None = None,
) -> Writer:
    s = world.stack
    reader = await new_user(s.api)
    writer_user = await new_user(s.api)
    start = await newest_id(world, reader)
    clients = [
        ChatSocket(f"gw{g + 1}-{k + 1}", s.gateway_urls[g], reader, s.api)
        for g in range(len(s.gateway_urls))
        for k in range(2)
    ] + [ChatSocket("lb", s.lb_url, reader, s.api)]
    for client in clients:
        client.last_id = start  # what a client that just loaded the history holds
    writer = Writer(s.api, writer_user, rate=20.0, route=route or (lambda n: None))
    try:
        await asyncio.gather(*(client.connect() for client in clients))
        writer.start()
        await writer.wait_acks(20)  # steady traffic before the fault
        await fault(clients)
        # Clients that connect right after the fault, from the same starting point.
        late = [
            ChatSocket(f"late-gw{g + 1}", url, reader, s.api)
            for g, url in enumerate(s.gateway_urls)
        ]
        for client in late:
            client.last_id = start
        clients += late
        await asyncio.gather(*(client.connect_like_a_client() for client in late))
        acked_after_fault = len(writer.acknowledged)
        await writer.wait_acks(acked_after_fault + 20, timeout=60)  # and after it
        await writer.stop()

        acknowledged = writer.ids()
        deadline = time.monotonic() + CONVERGE_SECONDS
        await asyncio.gather(
            *(
                c.wait_ids(acknowledged, timeout=max(0.1, deadline - time.monotonic()))
                for c in clients
            ),
            return_exceptions=True,  # a client that timed out is reported as lost below
        )
        line, lost = report(name, writer, clients)
        print(line)
        problems = {
            c.name: (sorted(lost[c.name])[:20], c.summary()) for c in clients if lost[c.name]
        }
        assert not problems, f"{line}\nlost: {problems}\nlogs: {s.log_dir}"
        return writer
    finally:
        await writer.stop()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def test_redis_restart(fault_world: FaultWorld) -> None:
    async def fault(_: list[ChatSocket]) -> None:
        await asyncio.to_thread(fault_world.redis.stop)
        await asyncio.sleep(DOWN_SECONDS)  # wait-ok: Redis stays down while messages flow
        await asyncio.to_thread(fault_world.redis.start)

    await run_scenario(fault_world, "redis_restart", fault)


async def test_gateway_sigkill(fault_world: FaultWorld) -> None:
    local = fault_world.stack.local

    async def fault(clients: list[ChatSocket]) -> None:
        # Kill the replica the load-balanced client is on: it must fail over to the other.
        (via_lb,) = [c for c in clients if c.name == "lb"]
        victim = await wait_gateway_holding(local.gateways, via_lb.sio.get_sid())
        code = await asyncio.to_thread(local.kill_gateway, victim, signal.SIGKILL)
        assert code == -signal.SIGKILL
        await asyncio.sleep(DOWN_SECONDS)  # wait-ok: the replica stays dead while messages flow
        await asyncio.to_thread(local.restart_gateway, victim)

    await run_scenario(fault_world, "gateway_sigkill", fault)


async def test_api_dies_between_commit_and_publish(fault_world: FaultWorld) -> None:
    s = fault_world.stack
    port = free_port()
    env = dict(
        s.local.api.env,
        PORT=str(port),
        REPLICA_NAME="api-failpoint",
        CHAT_FAILPOINT="crash_after_commit",
    )
    doomed = ManagedProcess(
        "api-failpoint", s.local.api.argv, env, s.log_dir / "api-failpoint.log", REPO_ROOT
    )
    url = f"http://127.0.0.1:{port}"
    crashes = 3
    armed = asyncio.Event()

    def start_doomed() -> None:
        doomed.start()
        wait_http_ok(doomed, f"{url}/readyz", time.monotonic() + 30)

    def route(_: int) -> str | None:
        if armed.is_set():
            armed.clear()
            return url  # this POST commits there and the process dies before answering
        return None

    async def fault(_: list[ChatSocket]) -> None:
        for i in range(crashes):
            if i:
                await asyncio.to_thread(start_doomed)
            armed.set()
            code = await asyncio.to_thread(doomed.popen.wait, 30)
            assert code == 70, f"failpoint process exited with {code}"

    await asyncio.to_thread(start_doomed)
    try:
        writer = await run_scenario(fault_world, "api_crash_after_commit", fault, route)
    finally:
        doomed.stop()
    # Each crashed POST had been committed: its retry was answered 200 with the stored row.
    assert writer.repeats >= crashes, f"only {writer.repeats} retries found the message stored"


async def test_postgres_restart(fault_world: FaultWorld) -> None:
    async def fault(_: list[ChatSocket]) -> None:
        await asyncio.to_thread(fault_world.postgres.stop)
        await asyncio.sleep(DOWN_SECONDS)  # wait-ok: PostgreSQL stays down while the writer retries
        await asyncio.to_thread(fault_world.postgres.start)

    await run_scenario(fault_world, "postgres_restart", fault)


def test_suite_runs_on_private_servers(fault_world: FaultWorld) -> None:
    """Guard: the servers this suite restarts are never the machine's shared ones."""
    assert fault_world.redis.port != 6379 and fault_world.postgres.port != 5432
    assert os.path.basename(str(fault_world.postgres.data)) == "data"


async def test_connecting_while_redis_is_down_gets_an_answer(fault_world: FaultWorld) -> None:
    s = fault_world.stack
    user = await new_user(s.api)
    client = ChatSocket("during-outage", s.gateway_urls[0], user, s.api, reconnection=False)
    await asyncio.to_thread(fault_world.redis.stop)
    try:
        # Accepted (live delivery resumes with Redis) or refused with a reason: both are
        # answers a client can act on. Silence until the client's own timeout is not.
        await client.connect_like_a_client(attempt_timeout=5, total=5)
    finally:
        await asyncio.to_thread(fault_world.redis.start)
        await client.close()
