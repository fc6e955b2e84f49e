"""Rooms over Socket.IO, end to end: REST changes, two gateway replicas, real clients.

Membership and messages go through the API's room routes (docs/ROOMS.md), the relay
publishes them, and each socket is connected to a named replica. "Nothing else
arrived" is checked behind a fence: a later global-room message, which every client
receives after everything committed before it. The module runs its own stack with the
rate limits off (it creates a thousand rooms), so it may also trim that stack's history.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.shared.redis_contract import RedisKeys
from stack import REPO_ROOT
from tests.helpers.limits import RATE_LIMITS_OFF, WAIT
from tests.helpers.rest import (
    GLOBAL_ROOM,
    Api,
    User,
    add_to_room,
    create_room,
    new_user,
    post,
    post_to_room,
    rest_session,
    room_call,
    room_events,
)
from tests.helpers.sockets import ChatSocket, Open, socket_opener, wait_gateway_holding
from tests.helpers.stack import ChatStack, local_chat_stack

pytestmark = pytest.mark.timeout(180)

JS_DIR = REPO_ROOT / "tests" / "js"


@pytest.fixture(scope="module")
async def rooms_stack() -> AsyncIterator[ChatStack]:
    env = {**RATE_LIMITS_OFF, "MAX_ROOMS_PER_USER": "2000"}
    async with local_chat_stack("rooms-socket", env) as stack:
        yield stack


@pytest.fixture(scope="module")
async def rooms_api(rooms_stack: ChatStack) -> AsyncIterator[Api]:
    async with rest_session() as http:
        yield Api(http, rooms_stack.api_url)


@pytest.fixture
async def open_socket(rooms_stack: ChatStack, rooms_api: Api) -> AsyncIterator[Open]:
    async with socket_opener(rooms_stack.gateway_urls, rooms_api) as open_:
        yield open_


async def say(api: Api, user: User, room: str, text: str) -> int:
    """Post to a room over REST; the message's `_id`."""
    reply = await post_to_room(api, user, room, text)
    assert reply.status == 201, (reply.status, reply.text)
    return int(reply.body["_id"])


async def call(api: Api, user: User, method: str, path: str, body: Any = None) -> Any:
    reply = await room_call(api, user, method, path, body)
    assert reply.status in (200, 201, 204), (method, path, reply.status, reply.text)
    return reply.body


async def fence(api: Api, author: User, *sockets: ChatSocket) -> int:
    """A global-room message every socket receives after everything committed before it."""
    fence_id = await post(api, author, "fence")
    for sock in sockets:
        await sock.wait_ids([fence_id])
    return fence_id


def ids_in(sock: ChatSocket, room: str) -> list[int]:
    return [int(d["_id"]) for n, d in sock.events if n == "message" and d["room"] == room]


def person(user: User) -> dict[str, str]:
    return {"id": user.id, "name": user.name}


async def test_room_messages_and_events_reach_members_on_both_replicas(
    rooms_api: Api, open_socket: Open
) -> None:
    ann, bob, eve = [await new_user(rooms_api) for _ in range(3)]
    a, b, e = await open_socket(ann, 0), await open_socket(bob, 1), await open_socket(eve, 1)

    room = (await create_room(rooms_api, bob, kind="private", name="Design", members=(ann,)))["id"]
    added = await a.wait_event("roomJoined")
    assert added["room"]["id"] == room and added["room"]["name"] == "Design"
    assert added["room"]["role"] == "member" and added["room"]["kind"] == "private"
    assert (await b.wait_event("roomJoined"))["room"]["role"] == "owner"
    ann_joined = await b.wait_event("memberChanged", lambda d: d["user"]["id"] == ann.id)
    assert ann_joined == {"_id": added["_id"], "room": room, "user": person(ann), "role": "member"}

    hello = await say(rooms_api, bob, room, "hello")
    await a.wait_ids([hello])
    await b.wait_ids([hello])
    message = a.events[-1][1]
    assert (message["room"], message["text"], message["owner"]) == (room, "hello", bob.id)

    await call(rooms_api, bob, "PATCH", f"/rooms/{room}/members/{ann.id}", {"role": "admin"})
    await call(rooms_api, ann, "PATCH", f"/rooms/{room}", {"name": "Design review"})
    for sock in (a, b):
        updated = await sock.wait_event("roomUpdated")
        assert updated["room"]["name"] == "Design review" and updated["room"]["id"] == room
        promoted = await sock.wait_event("memberChanged", lambda d: d["role"] == "admin")
        assert promoted["user"] == person(ann)
        assert int(promoted["_id"]) < int(updated["_id"])
        assert sock.event_log()[-2:] == [
            ("memberChanged", promoted["_id"]),
            ("roomUpdated", updated["_id"]),
        ]
    await fence(rooms_api, bob, a, b, e)
    assert [name for name, _ in e.events] == ["message"], "a non-member got nothing of the room"


async def test_a_removed_member_on_the_other_replica_stops_receiving_at_the_removal(
    rooms_api: Api, open_socket: Open
) -> None:
    owner, member = await new_user(rooms_api), await new_user(rooms_api)
    room = (await create_room(rooms_api, owner, kind="private", members=(member,)))["id"]
    o = await open_socket(owner, 0)
    phone, laptop = await open_socket(member, 1), await open_socket(member, 1, name="laptop")

    before = await say(rooms_api, owner, room, "before")
    for sock in (o, phone, laptop):
        await sock.wait_ids([before])
    await call(rooms_api, owner, "DELETE", f"/rooms/{room}/members/{member.id}")
    after = await say(rooms_api, owner, room, "after")
    await o.wait_ids([after])
    for sock in (phone, laptop):
        left = await sock.wait_event("roomLeft")
        assert left["room"] == room and left["reason"] == "removed"
    gone = await o.wait_event("memberChanged", lambda d: d["role"] is None)
    assert gone["user"] == person(member) and gone["_id"] == left["_id"]

    await fence(rooms_api, owner, o, phone, laptop)
    for sock in (phone, laptop):
        assert ids_in(sock, room) == [before], "nothing of the room after roomLeft"
        assert sock.event_log()[-2] == ("roomLeft", left["_id"])


async def test_a_non_member_cannot_receive_a_private_room_live_by_events_or_by_cursor(
    rooms_api: Api, open_socket: Open
) -> None:
    owner, eve = await new_user(rooms_api), await new_user(rooms_api)
    room = (await create_room(rooms_api, owner, kind="private"))["id"]
    o = await open_socket(owner, 0)
    e = await open_socket(eve, 1)
    start = await fence(rooms_api, owner, o, e)

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
    assert (await room_call(rooms_api, eve, "POST", f"/rooms/{room}/join")).status == 404
    secrets = [await say(rooms_api, owner, room, f"secret {i}") for i in range(3)]
    await o.wait_ids(secrets)
    await fence(rooms_api, owner, e)
    assert ids_in(e, room) == []

    # Back with a cursor from before the room's messages: the replay skips them too.
    await e.sio.disconnect()
    e.last_id = start
    await e.connect()
    recovered = await e.wait_recovered()
    assert recovered.recovered and recovered.refetch == []
    await fence(rooms_api, owner, e)
    assert ids_in(e, room) == []
    assert {n for n, _ in e.events} == {"message"}


async def test_a_forged_disconnect_event_does_not_keep_a_removed_member_in_the_room(
    rooms_api: Api, open_socket: Open
) -> None:
    owner, member = await new_user(rooms_api), await new_user(rooms_api)
    room = (await create_room(rooms_api, owner, kind="private", members=(member,)))["id"]
    o = await open_socket(owner, 0)
    m = await open_socket(member, 1)
    # python-socketio would hand this to the namespace's disconnect handler, which
    # forgets the socket's rooms while it stays connected.
    await m.sio.emit("disconnect", "forged")
    await call(rooms_api, owner, "DELETE", f"/rooms/{room}/members/{member.id}")
    secret = await say(rooms_api, owner, room, "after removal")
    await o.wait_ids([secret])
    await m.wait_event("roomLeft")
    await fence(rooms_api, owner, m)
    assert ids_in(m, room) == []
    assert m.sio.connected


async def test_reconnect_with_last_id_gets_what_it_missed_in_every_room_in_order(
    rooms_api: Api, open_socket: Open, rooms_stack: ChatStack
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    room_a = (await create_room(rooms_api, bob, kind="private", members=(ann,)))["id"]
    room_b = (await create_room(rooms_api, bob, kind="public", members=(ann,)))["id"]
    elsewhere = (await create_room(rooms_api, bob, kind="private"))["id"]
    a = await open_socket(ann, 0)
    watcher = await open_socket(bob, 1)
    seen = await fence(rooms_api, bob, a, watcher)

    await a.sio.disconnect()
    a1 = await say(rooms_api, bob, room_a, "a1")
    await say(rooms_api, bob, room_b, "b1 (ann leaves B later)")
    await say(rooms_api, bob, elsewhere, "not ann's")
    g1 = await post(rooms_api, bob, "g1")
    room_c = (await create_room(rooms_api, bob, kind="private", members=(ann,)))["id"]
    c1 = await say(rooms_api, bob, room_c, "c1")
    await call(rooms_api, ann, "POST", f"/rooms/{room_b}/leave")
    await say(rooms_api, bob, room_b, "b2 after ann left")
    a2 = await say(rooms_api, bob, room_a, "a2")
    await watcher.wait_ids([a2])

    before = len(a.events)
    await a.connect()  # lastId = seen
    recovered = await a.wait_recovered()
    assert (recovered.recovered, recovered.last_id, recovered.refetch) == (True, str(a2), [])
    ann_joined_c = next(
        e["id"]
        for e in await room_events(rooms_stack.database_url, room_c)
        if e["kind"] == "joined" and e["subject"] == ann.id
    )
    ann_left_b = next(
        e["id"]
        for e in await room_events(rooms_stack.database_url, room_b)
        if e["kind"] == "left" and e["subject"] == ann.id
    )
    # Rooms as they are now: B's messages are gone with ann's membership (she left it),
    # C's start at her joining it; her own joining and leaving are replayed in order.
    assert a.event_log()[before:] == [
        ("message", str(a1)),
        ("message", str(g1)),
        ("roomJoined", str(ann_joined_c)),
        ("memberChanged", str(ann_joined_c)),
        ("message", str(c1)),
        ("roomLeft", str(ann_left_b)),
        ("message", str(a2)),
    ]
    assert seen < a1
    live = await say(rooms_api, bob, room_c, "live in C")
    await a.wait_ids([live])
    assert a.event_log()[-1] == ("message", str(live))
    assert a.duplicates() == 0


async def test_when_the_stream_no_longer_covers_the_cursor_the_client_is_told_which_rooms(
    rooms_api: Api,
    open_socket: Open,
    rooms_stack: ChatStack,
    redis_client: aioredis.Redis,
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    busy = (await create_room(rooms_api, bob, kind="private", members=(ann,)))["id"]
    quiet = (await create_room(rooms_api, bob, kind="private", members=(ann,)))["id"]
    await say(rooms_api, bob, quiet, "quiet before")
    a = await open_socket(ann, 0)
    watcher = await open_socket(bob, 1)
    await fence(rooms_api, bob, a, watcher)

    await a.sio.disconnect()
    await say(rooms_api, bob, busy, "busy 1")
    newest = await post(rooms_api, bob, "global 1")
    await watcher.wait_ids([newest])
    # What the relay's trimming does to entries past their age: the cursor falls out.
    stream = RedisKeys(rooms_stack.channel).history_stream
    await redis_client.xtrim(stream, minid=f"{newest}-0", approximate=False)
    await a.connect()
    recovered = await a.wait_recovered()
    assert not recovered.recovered
    assert sorted(recovered.refetch or []) == sorted([busy, GLOBAL_ROOM])


async def test_memberships_lost_by_redis_are_waited_for_at_connect(
    rooms_api: Api, open_socket: Open, rooms_stack: ChatStack, redis_client: aioredis.Redis
) -> None:
    """Redis lost the hashes: a connect does not miss rooms while the relay rebuilds them.

    The admission waits for the rebuild (ADMIT_TIMEOUT_SECONDS); when the relay is slower
    than that, the client is held back and sent to reconnect once the hashes are back.
    Either way its room's messages reach it.
    """
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    room = (await create_room(rooms_api, bob, kind="private", members=(ann,)))["id"]
    keys = RedisKeys(rooms_stack.channel)
    before = await say(rooms_api, bob, room, "before the loss")
    assert room.encode() in await redis_client.hkeys(keys.user_rooms(ann.id))
    await redis_client.delete(keys.memberships_applied, keys.user_rooms(ann.id))

    # A client with its cursor that reconnects when told to, as the official ones do.
    a = ChatSocket("ann", rooms_stack.gateway_urls[1], ann, rooms_api, rooms=True)
    a.last_id = before
    try:
        await a.connect()
        message = await say(rooms_api, bob, room, "after the rebuild")
        await a.wait_ids([message])
    finally:
        await a.close()
    assert await redis_client.exists(keys.memberships_applied)


async def test_a_user_in_a_thousand_rooms_connects_in_all_of_them(
    rooms_api: Api, open_socket: Open, rooms_stack: ChatStack
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    rooms: list[str] = []
    for start in range(0, 1000, 25):
        created = await asyncio.gather(
            *(create_room(rooms_api, bob, kind="private", members=(ann,)) for _ in range(25))
        )
        rooms.extend(room["id"] for room in created)
    outside = (await create_room(rooms_api, bob, kind="private"))["id"]
    a = await open_socket(ann, 1)

    assert rooms_stack.local is not None
    gateways = rooms_stack.local.gateways
    sid = a.sio.get_sid("/") or ""
    holder = await wait_gateway_holding(gateways, sid)
    line = next(
        json.loads(text)
        for text in gateways[holder].log_path.read_text().splitlines()
        if sid in text and '"connected"' in text
    )
    print(f"\nconnect of a user in {line['rooms']} rooms: {line['connect_ms']} ms server-side")
    assert line["rooms"] == 1000

    first = await say(rooms_api, bob, rooms[0], "first room")
    last = await say(rooms_api, bob, rooms[-1], "last room")
    await say(rooms_api, bob, outside, "not a member")
    await fence(rooms_api, bob, a)
    received = [int(d["_id"]) for n, d in a.events if n == "message" and d["room"] != GLOBAL_ROOM]
    assert received == [first, last]


async def test_a_legacy_client_gets_the_global_room_as_before_and_nothing_else(
    rooms_api: Api, open_socket: Open
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    room = (await create_room(rooms_api, bob, kind="private", members=(ann,)))["id"]
    legacy = await open_socket(ann, 0, rooms=False)
    received: list[tuple[str, Any]] = []
    for name in ("message", "roomJoined", "roomLeft", "memberChanged", "roomUpdated"):
        legacy.sio.on(name, lambda data, name=name: received.append((name, data)))
    start = await fence(rooms_api, bob, legacy)
    await say(rooms_api, bob, room, "room")
    global_id = await post(rooms_api, bob, "global")
    await call(rooms_api, bob, "PATCH", f"/rooms/{room}", {"name": "renamed"})
    await call(rooms_api, bob, "DELETE", f"/rooms/{room}/members/{ann.id}")
    end = await fence(rooms_api, bob, legacy)
    assert legacy.socket_ids[-3:] == [start, global_id, end]
    global_message = await legacy.next_message(lambda m: m["_id"] == str(global_id))
    assert "room" not in global_message, "getAllmessages is the wire object as before"
    assert received == []

    await legacy.sio.disconnect()
    legacy.last_id = start
    await legacy.connect()
    recovered = await legacy.wait_recovered()
    assert (recovered.recovered, recovered.refetch) == (True, None), "no refetch for legacy"
    assert legacy.socket_ids[-2:] == [global_id, end], "the replay has the global room only"


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
        stdout = self.proc.stdout
        assert stdout is not None

        async def scan() -> Any:
            while True:
                raw = await stdout.readline()
                assert raw, f"the node client exited; its events: {self.lines}"
                event = json.loads(raw)
                self.lines.append(event)
                assert event["event"] not in ("connect_error", "timeout"), self.lines
                if event["event"] == name and (match is None or match(event.get("data"))):
                    return event.get("data")

        return await asyncio.wait_for(scan(), WAIT)

    def received(self) -> list[tuple[str, str | None]]:
        """(event, `_id`) of every event with data, in order."""
        return [(e["event"], e["data"].get("_id")) for e in self.lines if "data" in e]

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def test_the_official_js_client_receives_rooms_and_recovers_with_one_cursor(
    rooms_api: Api, rooms_stack: ChatStack
) -> None:
    ann, bob = await new_user(rooms_api), await new_user(rooms_api)
    room = (await create_room(rooms_api, bob, kind="public", name="JS"))["id"]
    client = await NodeRoomsClient.start(rooms_stack.gateway_urls[0], ann.token)
    try:
        await client.until("connect")
        added = await add_to_room(rooms_api, bob, room, ann)
        assert added.status == 201, added.text
        hello = await say(rooms_api, bob, room, "hello from python")
        await call(rooms_api, bob, "PATCH", f"/rooms/{room}", {"topic": "js"})
        await call(rooms_api, bob, "DELETE", f"/rooms/{room}/members/{ann.id}")
        after = await say(rooms_api, bob, room, "after the removal")
        fence_id = await post(rooms_api, bob, "fence")
        fenced = await client.until("message", lambda d: d["_id"] == str(fence_id))
        assert fenced["room"] == GLOBAL_ROOM
        events = await room_events(rooms_stack.database_url, room)
        joined, updated, left = (e["id"] for e in events if e["subject"] in (ann.id, None))
        assert client.received() == [
            ("roomJoined", str(joined)),
            ("memberChanged", str(joined)),
            ("message", str(hello)),
            ("roomUpdated", str(updated)),
            ("roomLeft", str(left)),
            ("message", str(fence_id)),
        ]
        assert str(after) not in {i for _, i in client.received()}
        message = next(e["data"] for e in client.lines if e["event"] == "message")
        assert message["room"] == room and message["text"] == "hello from python"
    finally:
        await client.stop()

    # Reconnecting on the other replica with the one cursor: the replay, then recovered.
    await call(rooms_api, ann, "POST", f"/rooms/{room}/join")
    missed = await say(rooms_api, bob, room, "missed")
    again = await NodeRoomsClient.start(rooms_stack.gateway_urls[1], ann.token, fence_id)
    try:
        recovered = await again.until("recovered")
        assert recovered == {"recovered": True, "lastId": str(missed), "refetch": []}
        rejoined = (await room_events(rooms_stack.database_url, room))[-1]["id"]
        assert again.received() == [
            ("roomJoined", str(rejoined)),
            ("memberChanged", str(rejoined)),
            ("message", str(missed)),
            ("recovered", None),
        ]
        assert "getAllmessages" not in [line["event"] for line in again.lines]
    finally:
        await again.stop()
