"""Fault injection: nothing acknowledged is lost while Redis, a gateway, an API process or
PostgreSQL fails under a steady writer.

Every scenario runs the same way: five counting legacy clients (two on each gateway
replica, one through the load balancer; each reconnects with `lastId` and refetches over
REST when told `recovered: false`) plus one per replica that connects right after the
fault, a writer posting 20 messages/s to the global room that retries a failed POST
with the same client id until acknowledged, and one fault in the middle. Messages flow
in three more rooms at the same time (a private room, a public room and a direct room,
5 messages/s each from their own writer), counted by rooms-aware clients (one per
replica, one through the load balancer, one per replica after the fault) that keep one
cursor for all rooms and refetch the rooms they are told to. The scenario prints one
line of counts for the global room and one per room, and asserts that every client ends
up with every acknowledged message of every room it counts; for the rooms also that
none arrived twice over the socket.

Redis and PostgreSQL are PRIVATE servers on free ports (see conftest.py): restarting the
machine's shared ones would break everybody else's work. `make test-faults` runs only
this file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from stack import REPO_ROOT, ManagedProcess, free_port
from stack.process import wait_http_ok
from tests.helpers.delivery import (
    Changer,
    FaultWorld,
    Writer,
    change_problems,
    report,
    room_report,
)
from tests.helpers.rest import Api, User, create_room, new_user, open_direct, room_call
from tests.helpers.sockets import ChatSocket, wait_gateway_holding

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

DOWN_SECONDS = 1.5  # how long a restarted server stays down
CONVERGE_SECONDS = 45.0  # bound for every client to hold every acknowledged message
ROOM_RATE = 5.0  # messages/s in each of the three rooms


async def open_rooms(api: Api, reader: User) -> dict[str, tuple[str, User]]:
    """A private, a public and a direct room with `reader` in each: label -> (id, writer)."""
    owner, joiner, peer = [await new_user(api) for _ in range(3)]
    private = await create_room(api, owner, kind="private", members=(reader,))
    public = await create_room(api, joiner, kind="public")
    joined = await room_call(api, reader, "POST", f"/rooms/{public['id']}/join")
    assert joined.status == 200, joined.text
    direct = await open_direct(api, peer, reader)
    assert direct.status == 201, direct.text
    return {
        "private": (private["id"], owner),
        "public": (public["id"], joiner),
        "direct": (direct.body["id"], peer),
    }


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
    rooms = await open_rooms(s.api, reader)
    start = await newest_id(world, reader)
    clients = [
        ChatSocket(f"gw{g + 1}-{k + 1}", s.gateway_urls[g], reader, s.api)
        for g in range(len(s.gateway_urls))
        for k in range(2)
    ] + [ChatSocket("lb", s.lb_url, reader, s.api)]
    room_clients = [
        ChatSocket(f"rooms-gw{g + 1}", url, reader, s.api, rooms=True)
        for g, url in enumerate(s.gateway_urls)
    ] + [ChatSocket("rooms-lb", s.lb_url, reader, s.api, rooms=True)]
    for client in clients + room_clients:
        client.last_id = start  # what a client that just loaded the history holds
    writer = Writer(s.api, writer_user, rate=20.0, route=route or (lambda n: None))
    room_writers = {
        label: Writer(s.api, author, rate=ROOM_RATE, path=f"/rooms/{room}/messages")
        for label, (room, author) in rooms.items()
    }
    private, _ = rooms["private"]
    changer = Changer(s.api, room_writers["private"], private)
    writers = [writer, *room_writers.values(), changer]
    try:
        await asyncio.gather(*(client.connect() for client in clients + room_clients))
        for w in writers:
            w.start()
        await writer.wait_acks(20)  # steady traffic before the fault
        await fault(clients)
        # Clients that connect right after the fault, from the same starting point.
        late = [
            ChatSocket(f"late-gw{g + 1}", url, reader, s.api)
            for g, url in enumerate(s.gateway_urls)
        ]
        late_rooms = [
            ChatSocket(f"late-rooms-gw{g + 1}", url, reader, s.api, rooms=True)
            for g, url in enumerate(s.gateway_urls)
        ]
        for client in late + late_rooms:
            client.last_id = start
        clients += late
        room_clients += late_rooms
        await asyncio.gather(*(client.connect_like_a_client() for client in late + late_rooms))
        acked_after_fault = len(writer.acknowledged)
        await writer.wait_acks(acked_after_fault + 20, timeout=60)  # and after it
        await asyncio.gather(*(w.stop() for w in writers))

        await converge(clients, room_clients, writer, rooms, room_writers, changer)
        problems = check(name, clients, writer, "")
        for label, (room, _) in rooms.items():
            problems |= check(name, room_clients, room_writers[label], room, label)
        problems |= check_changes(name, room_clients, changer)
        assert not problems, f"lost or repeated: {problems}\nlogs: {s.log_dir}"
        return writer
    finally:
        await asyncio.gather(*(w.stop() for w in writers))
        await asyncio.gather(*(c.close() for c in clients + room_clients), return_exceptions=True)


async def converge(
    clients: list[ChatSocket],
    room_clients: list[ChatSocket],
    writer: Writer,
    rooms: dict[str, tuple[str, User]],
    room_writers: dict[str, Writer],
    changer: Changer,
) -> None:
    """Wait (bounded) until every client holds every acknowledged message and change."""
    acknowledged = writer.ids()
    wanted = {room: room_writers[label].ids() for label, (room, _) in rooms.items()}
    deadline = time.monotonic() + CONVERGE_SECONDS

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    def has_every_room(client: ChatSocket) -> bool:
        refetched = changer.room in client.rest_room_ids
        return all(ids <= client.room_delivered(room) for room, ids in wanted.items()) and (
            refetched or not change_problems(changer, client)
        )

    await asyncio.gather(
        *(c.wait_ids(acknowledged, timeout=left()) for c in clients),
        *(c.wait_for(lambda c=c: has_every_room(c), left(), "every room") for c in room_clients),
        return_exceptions=True,  # a client that timed out is reported as lost below
    )


def check_changes(scenario: str, clients: list[ChatSocket], changer: Changer) -> set[str]:
    """Print the counts of the edits, reactions and deletions; the problems found."""
    checked = [c for c in clients if changer.room not in c.rest_room_ids]
    problems = {f"changes:{c.name}: {p}" for c in checked for p in change_problems(changer, c)}
    print(
        f"scenario={scenario} room=private changes: edits={sum(map(len, changer.edits.values()))} "
        f"reactions={len(changer.reactions)} deletions={len(changer.deletions)} "
        f"checked_clients={len(checked)} refetched_clients={len(clients) - len(checked)} "
        f"problems={len(problems)} change_failures={changer.failures}"
    )
    return problems


def check(
    scenario: str, clients: list[ChatSocket], writer: Writer, room: str, label: str = "global"
) -> set[str]:
    """Print the counts of one room; the problems (lost, or repeated in a room) found."""
    line, lost = (
        room_report(scenario, room, label, writer, clients)
        if room
        else report(scenario, writer, clients)
    )
    print(line)
    problems = {
        f"{label}:{c.name}: lost {sorted(lost[c.name])[:20]} {c.summary()}"
        for c in clients
        if lost[c.name]
    }
    if room:
        problems |= {
            f"{label}:{c.name}: {c.room_duplicates(room)} repeated"
            for c in clients
            if c.room_duplicates(room)
        }
    return problems


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


async def test_a_rooms_client_admitted_while_redis_is_down_gets_its_rooms_back(
    fault_world: FaultWorld,
) -> None:
    """Admitted to the global room alone during the outage, it is sent back to reconnect."""
    s = fault_world.stack
    reader, author = await new_user(s.api), await new_user(s.api)
    room = (await create_room(s.api, author, kind="private", members=(reader,)))["id"]
    client = ChatSocket("rooms-during-outage", s.gateway_urls[0], reader, s.api, rooms=True)
    client.last_id = await newest_id(world=fault_world, user=reader)  # it loaded the history
    await asyncio.to_thread(fault_world.redis.stop)
    try:
        await client.connect_like_a_client(attempt_timeout=5, total=10)
        posted = await room_call(
            s.api,
            author,
            "POST",
            f"/rooms/{room}/messages",
            json={"id": str(uuid.uuid4()), "text": "x"},
        )
        assert posted.status == 201, posted.text
    finally:
        await asyncio.to_thread(fault_world.redis.start)
    try:
        message_id = int(posted.body["_id"])
        await client.wait_for(
            lambda: message_id in client.room_delivered(room), what="the room's message"
        )
        assert client.connects >= 2  # it was sent back to connect again, with its rooms
    finally:
        await client.close()
