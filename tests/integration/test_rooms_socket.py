"""Rooms over Socket.IO on two gateway replicas (docs/ROOMS.md, "Socket.IO").

The entries are published the way the outbox relay publishes them (same Lua script,
same packets, membership hashes and room tails kept by it), on a stack of this module's
own whose API publishes nothing else, so every id here is this module's. Each socket
connects to a named replica; "nothing else arrived" is checked behind a fence: a
later global-room message, which every client receives after everything before it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.shared.redis_contract import RedisKeys
from services.shared.rooms import GLOBAL_ROOM_ID
from stack import REPO_ROOT
from tests.helpers.limits import REDIS_URL, WAIT
from tests.helpers.relay import (
    RelayLike,
    joined_entry,
    left_entry,
    message_entry,
    role_entry,
    updated_entry,
)
from tests.helpers.rest import Api, User, new_user, rest_session
from tests.helpers.sockets import ChatSocket, wait_gateway_holding
from tests.helpers.stack import ChatStack, local_chat_stack

pytestmark = pytest.mark.timeout(120)

JS_DIR = REPO_ROOT / "tests" / "js"


@pytest.fixture(scope="module")
async def rooms_stack() -> AsyncIterator[ChatStack]:
    async with local_chat_stack("rooms-socket", {"RATE_LIMIT_AUTH_PER_MINUTE": "0"}) as stack:
        yield stack


@pytest.fixture(scope="module")
async def rooms_api(rooms_stack: ChatStack) -> AsyncIterator[Api]:
    async with rest_session() as http:
        yield Api(http, rooms_stack.api_url)


@pytest.fixture(scope="module")
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def relay(rooms_stack: ChatStack, redis_client: aioredis.Redis) -> RelayLike:
    return RelayLike(redis_client, rooms_stack.channel)


Open = Callable[..., Awaitable[ChatSocket]]


@pytest.fixture
async def open_socket(rooms_stack: ChatStack, rooms_api: Api) -> AsyncIterator[Open]:
    """Connect a ChatSocket of `user` to gateway `replica` (0 or 1); all closed at the end."""
    opened: list[ChatSocket] = []

    async def open_(user: User, replica: int, *, rooms: bool = True, name: str = "") -> ChatSocket:
        sock = ChatSocket(
            name or f"{user.name}@gw{replica}",
            rooms_stack.gateway_urls[replica],
            user,
            rooms_api,
            reconnection=False,
            rooms=rooms,
        )
        opened.append(sock)
        await sock.connect()
        return sock

    try:
        yield open_
    finally:
        await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)


def new_room() -> str:
    return str(uuid.uuid4())


async def fence(relay: RelayLike, author: User, *sockets: ChatSocket) -> int:
    """A global-room message every socket receives after everything published before it."""
    fence_id = await relay.message(GLOBAL_ROOM_ID, author, "fence")
    for sock in sockets:
        await sock.wait_ids([fence_id])
    return fence_id


def ids_in(sock: ChatSocket, room: str) -> list[int]:
    return [int(d["_id"]) for n, d in sock.events if n == "message" and d["room"] == room]


async def test_room_messages_and_events_reach_members_on_both_replicas(
    rooms_api: Api, relay: RelayLike, open_socket: Open
) -> None:
    ann, bob, eve = [await new_user(rooms_api) for _ in range(3)]
    room = new_room()
    await relay.publish(joined_entry(room, ann, "owner", "Design"))
    a = await open_socket(ann, 0)
    b = await open_socket(bob, 1)
    e = await open_socket(eve, 1)

    added, first = await relay.publish(
        joined_entry(room, bob, "member", "Design"), message_entry(room, ann, "hello")
    )
    await a.wait_ids([first])
    await b.wait_ids([first])
    joined = await b.wait_event("roomJoined")
    assert joined == {
        "_id": str(added),
        "room": {"id": room, "kind": "private", "name": "Design", "topic": "", "archived": False},
    }
    changed = await a.wait_event("memberChanged")
    assert changed == {
        "_id": str(added),
        "room": room,
        "user": {"id": bob.id, "name": bob.name},
        "role": "member",
    }
    message = a.events[-1][1]
    assert message["room"] == room and message["text"] == "hello" and message["_id"] == str(first)

    promoted, renamed = await relay.publish(
        role_entry(room, bob, "admin"), updated_entry(room, "Design review", "weekly")
    )
    for sock in (a, b):
        await sock.wait_event("roomUpdated")
        assert sock.event_log()[-2:] == [
            ("memberChanged", str(promoted)),
            ("roomUpdated", str(renamed)),
        ]
    assert (await b.wait_event("roomUpdated"))["room"] == {
        "id": room,
        "name": "Design review",
        "topic": "weekly",
        "archived": False,
    }
    await fence(relay, ann, a, b, e)
    assert [name for name, _ in e.events] == ["message"], "a non-member got nothing of the room"
    assert e.messages.qsize() == 1


async def test_a_removed_member_on_the_other_replica_stops_receiving_at_the_removal(
    rooms_api: Api, relay: RelayLike, open_socket: Open
) -> None:
    owner, member = await new_user(rooms_api), await new_user(rooms_api)
    room = new_room()
    await relay.publish(joined_entry(room, owner, "owner"), joined_entry(room, member))
    o = await open_socket(owner, 0)
    phone, laptop = await open_socket(member, 1), await open_socket(member, 1, name="laptop")

    before = await relay.message(room, owner, "before")
    for sock in (o, phone, laptop):
        await sock.wait_ids([before])
    removed, after = await relay.publish(
        left_entry(room, member, "removed"), message_entry(room, owner, "after")
    )
    await o.wait_ids([after])
    for sock in (phone, laptop):
        left = await sock.wait_event("roomLeft")
        assert left == {"_id": str(removed), "room": room, "reason": "removed"}
    gone = await o.wait_event("memberChanged", lambda d: d["_id"] == str(removed))
    assert gone["role"] is None and gone["user"]["id"] == member.id

    await fence(relay, owner, o, phone, laptop)
    for sock in (phone, laptop):
        assert ids_in(sock, room) == [before], "nothing of the room after roomLeft"
        assert sock.event_log()[-2][0] == "roomLeft"


async def test_a_non_member_cannot_receive_a_private_room_live_by_events_or_by_cursor(
    rooms_api: Api, relay: RelayLike, open_socket: Open
) -> None:
    owner, eve = await new_user(rooms_api), await new_user(rooms_api)
    room = new_room()
    await relay.publish(joined_entry(room, owner, "owner"))
    o = await open_socket(owner, 0)
    e = await open_socket(eve, 1)
    start = await fence(relay, owner, o, e)

    # Every event name a client could hope joins a room; none exists on the server.
    for event, data in [
        ("join", room),
        ("joinRoom", {"room": room}),
        ("enter_room", {"room": room}),
        ("subscribe", {"channel": room}),
        ("message", {"room": room, "text": "let me in"}),
        ("connect", {"QUERY_STRING": "rooms=1"}),
    ]:
        await e.emit(event, data)
    secrets = await relay.publish(*(message_entry(room, owner, f"secret {i}") for i in range(3)))
    await o.wait_ids(secrets)
    await fence(relay, owner, e)
    assert ids_in(e, room) == []

    # Back with a cursor from before the room's messages: the replay skips them too.
    await e.sio.disconnect()
    e.last_id = start
    await e.connect()
    recovered = await e.wait_recovered()
    assert recovered.recovered and recovered.refetch == []
    await fence(relay, owner, e)
    assert ids_in(e, room) == []
    assert {n for n, _ in e.events} == {"message"}


async def test_a_forged_disconnect_event_does_not_keep_a_removed_member_in_the_room(
    rooms_api: Api, relay: RelayLike, open_socket: Open
) -> None:
    owner, member = await new_user(rooms_api), await new_user(rooms_api)
    room = new_room()
    await relay.publish(joined_entry(room, owner, "owner"), joined_entry(room, member))
    o = await open_socket(owner, 0)
    m = await open_socket(member, 1)
    # python-socketio would hand this to the namespace's disconnect handler, which
    # forgets the socket's rooms while it stays connected.
    await m.sio.emit("disconnect", "forged")
    _, secret = await relay.publish(
        left_entry(room, member), message_entry(room, owner, "after removal")
    )
    await o.wait_ids([secret])
    await m.wait_event("roomLeft")
    await fence(relay, owner, m)
    assert ids_in(m, room) == []
    assert m.sio.connected


async def test_reconnect_with_last_id_gets_what_it_missed_in_every_room_in_order(
    rooms_api: Api, relay: RelayLike, open_socket: Open
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    room_a, room_b, room_c, elsewhere = new_room(), new_room(), new_room(), new_room()
    await relay.publish(
        joined_entry(room_a, ann), joined_entry(room_b, ann), joined_entry(elsewhere, bob)
    )
    a = await open_socket(ann, 0)
    watcher = await open_socket(bob, 1)
    seen = await fence(relay, bob, a, watcher)

    await a.sio.disconnect()
    missed = await relay.publish(
        message_entry(room_a, bob, "a1"),
        message_entry(room_b, bob, "b1"),
        message_entry(elsewhere, bob, "not ann's"),
        message_entry(GLOBAL_ROOM_ID, bob, "g1"),
        joined_entry(room_c, ann, "member", "C"),
        message_entry(room_c, bob, "c1"),
        left_entry(room_b, ann, "left"),
        message_entry(room_b, bob, "b2 after ann left"),
        message_entry(room_a, bob, "a2"),
    )
    await watcher.wait_ids([missed[3]])
    before = len(a.events)
    await a.connect()  # lastId = seen
    recovered = await a.wait_recovered()
    assert (recovered.recovered, recovered.last_id, recovered.refetch) == (
        True,
        str(missed[-1]),
        [],
    )
    a1, _, _, g1, joined_c, c1, left_b, _, a2 = missed
    # Rooms as they are now: B's messages are gone with ann's membership (she left it),
    # C's start at her joining it; her own joining and leaving are replayed in order.
    assert a.event_log()[before:] == [
        ("message", str(a1)),
        ("message", str(g1)),
        ("roomJoined", str(joined_c)),
        ("memberChanged", str(joined_c)),
        ("message", str(c1)),
        ("roomLeft", str(left_b)),
        ("message", str(a2)),
    ]
    assert seen < a1
    live = await relay.message(room_c, bob, "live in C")
    await a.wait_ids([live])
    assert a.event_log()[-1] == ("message", str(live))
    assert a.duplicates() == 0


async def test_when_the_stream_no_longer_covers_the_cursor_the_client_is_told_which_rooms(
    rooms_api: Api,
    relay: RelayLike,
    open_socket: Open,
    rooms_stack: ChatStack,
    redis_client: aioredis.Redis,
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    busy, quiet = new_room(), new_room()
    await relay.publish(joined_entry(busy, ann), joined_entry(quiet, ann))
    await relay.message(quiet, bob, "quiet before")
    a = await open_socket(ann, 0)
    watcher = await open_socket(bob, 1)
    await fence(relay, bob, a, watcher)

    await a.sio.disconnect()
    after = await relay.publish(
        message_entry(busy, bob, "busy 1"), message_entry(GLOBAL_ROOM_ID, bob, "global 1")
    )
    await watcher.wait_ids([after[-1]])
    # What the relay's trimming does to entries past their age: the cursor falls out.
    stream = RedisKeys(rooms_stack.channel).history_stream
    await redis_client.xtrim(stream, minid=f"{after[-1]}-0", approximate=False)
    await a.connect()
    recovered = await a.wait_recovered()
    assert not recovered.recovered
    assert sorted(recovered.refetch or []) == sorted([busy, GLOBAL_ROOM_ID])


async def test_a_user_in_a_thousand_rooms_connects_in_all_of_them(
    rooms_api: Api, relay: RelayLike, open_socket: Open, rooms_stack: ChatStack
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    rooms = [new_room() for _ in range(1000)]
    await relay.publish(*(joined_entry(room, ann) for room in rooms))
    outside = new_room()
    a = await open_socket(ann, 1)

    assert rooms_stack.local is not None
    gateways = rooms_stack.local.gateways
    holder = await wait_gateway_holding(gateways, a.sio.get_sid("/") or "")
    line = next(
        json.loads(line)
        for line in gateways[holder].log_path.read_text().splitlines()
        if a.sio.get_sid("/") in line and '"connected"' in line
    )
    print(f"\nconnect of a user in {line['rooms']} rooms: {line['connect_ms']} ms server-side")
    assert line["rooms"] == 1000

    ids = await relay.publish(
        message_entry(rooms[0], bob, "first room"),
        message_entry(rooms[-1], bob, "last room"),
        message_entry(outside, bob, "not a member"),
    )
    await fence(relay, bob, a)
    assert [
        int(d["_id"]) for n, d in a.events if n == "message" and d["room"] != GLOBAL_ROOM_ID
    ] == ids[:2]


async def test_a_legacy_client_gets_the_global_room_as_before_and_nothing_else(
    rooms_api: Api, relay: RelayLike, open_socket: Open
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    room = new_room()
    await relay.publish(joined_entry(room, ann))
    legacy = await open_socket(ann, 0, rooms=False)
    received: list[tuple[str, Any]] = []
    for name in ("message", "roomJoined", "roomLeft", "memberChanged", "roomUpdated"):
        legacy.sio.on(name, lambda data, name=name: received.append((name, data)))
    start = await fence(relay, bob, legacy)
    ids = await relay.publish(
        message_entry(room, bob, "room"),
        message_entry(GLOBAL_ROOM_ID, bob, "global"),
        left_entry(room, ann),
        updated_entry(room, "renamed"),
    )
    end = await fence(relay, bob, legacy)
    assert legacy.socket_ids[-3:] == [start, ids[1], end]
    global_message = await legacy.next_message(lambda m: m["_id"] == str(ids[1]))
    assert "room" not in global_message, "getAllmessages is the wire object as before"
    assert received == []

    await legacy.sio.disconnect()
    legacy.last_id = start
    await legacy.connect()
    recovered = await legacy.wait_recovered()
    assert (recovered.recovered, recovered.refetch) == (True, None), "no refetch for legacy"
    assert legacy.socket_ids[-2:] == [ids[1], end], "the replay has the global room only"


class NodeRoomsClient:
    """tests/js/rooms_check.mjs (socket.io-client 4.x) running; its events as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, token: str, last_id: int | None = None) -> NodeRoomsClient:
        node = shutil.which("node")
        if node is None or not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
            pytest.skip("node and tests/js/node_modules are needed (npm ci in tests/js)")
        argv = [node, str(JS_DIR / "rooms_check.mjs"), url, token, "60000"]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            *([str(last_id)] if last_id is not None else []),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def until(self, name: str, match: Callable[[Any], bool] | None = None) -> Any:
        """Read events until `name` (with data satisfying `match`) arrives; its data."""
        assert self.proc.stdout is not None

        async def scan() -> Any:
            while True:
                raw = await self.proc.stdout.readline()  # type: ignore[union-attr]
                assert raw, f"the node client exited; its events: {self.lines}"
                event = json.loads(raw)
                self.lines.append(event)
                assert event["event"] not in ("connect_error", "timeout"), self.lines
                if event["event"] == name and (match is None or match(event.get("data"))):
                    return event.get("data")

        return await asyncio.wait_for(scan(), WAIT)

    def names(self) -> list[str]:
        return [line["event"] for line in self.lines]

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def test_the_official_js_client_receives_rooms_and_recovers_with_one_cursor(
    rooms_api: Api, relay: RelayLike, rooms_stack: ChatStack
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    room = new_room()
    await relay.publish(joined_entry(room, bob, "owner"))
    client = await NodeRoomsClient.start(rooms_stack.gateway_urls[0], ann.token)
    try:
        await client.until("connect")
        added, hello, renamed, removed, after = await relay.publish(
            joined_entry(room, ann, "member", "JS"),
            message_entry(room, bob, "hello from python"),
            updated_entry(room, "JS renamed"),
            left_entry(room, ann, "removed"),
            message_entry(room, bob, "after the removal"),
        )
        fence_id = await relay.message(GLOBAL_ROOM_ID, bob, "fence")
        fenced = await client.until("message", lambda d: d["_id"] == str(fence_id))
        assert fenced["room"] == GLOBAL_ROOM_ID
        received = [(e["event"], e["data"]["_id"]) for e in client.lines if "data" in e]
        assert received == [
            ("roomJoined", str(added)),
            ("memberChanged", str(added)),
            ("message", str(hello)),
            ("roomUpdated", str(renamed)),
            ("roomLeft", str(removed)),
            ("message", str(fence_id)),
        ]
        assert after not in {int(e["data"]["_id"]) for e in client.lines if "data" in e}
        message = next(e["data"] for e in client.lines if e["event"] == "message")
        assert message["room"] == room and message["text"] == "hello from python"
    finally:
        await client.stop()

    # Reconnecting on the other replica with the one cursor: the replay, then recovered.
    missed = await relay.publish(
        joined_entry(room, ann, "member", "JS again"), message_entry(room, bob, "missed")
    )
    again = await NodeRoomsClient.start(rooms_stack.gateway_urls[1], ann.token, fence_id)
    try:
        recovered = await again.until("recovered")
        assert recovered == {"recovered": True, "lastId": str(missed[-1]), "refetch": []}
        assert [(e["event"], e["data"].get("_id")) for e in again.lines if "data" in e] == [
            ("roomJoined", str(missed[0])),
            ("memberChanged", str(missed[0])),
            ("message", str(missed[1])),
            ("recovered", None),
        ]
        assert "getAllmessages" not in again.names()
    finally:
        await again.stop()
