"""The one Socket.IO test client (`ChatSocket`), the factory the fixtures use, raw Engine.IO.

`ChatSocket` serves every suite: the integration tests read its messages one by one
(`next_message`, `collect`), the delivery tests count what it received (`socket_ids`,
`delivered()`, `wait_ids`) while it behaves like a careful real client:

* its `auth` is a callable, so every (re)connect sends `lastId` = newest `_id` it holds;
* on `recovered: false` it refetches the gap over REST (`GET /messages?after=`);
* it keeps every `_id` it received, in arrival order, duplicates included;
* with `reconnection=True` and like the official JavaScript client (unlike a stock
  python-socketio client, see `js_like_reconnect`), it reconnects when the server
  closes the Engine.IO session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import socketio

from tests.helpers.limits import CONNECT_TIMEOUT, DELIVERY_TIMEOUT, WAIT
from tests.helpers.rest import Api, User, fetch_after

EVENT = "getAllmessages"
RECOVERED = "recovered"
# What a rooms-aware client receives besides `recovered` (docs/ROOMS.md, "Socket.IO", and
# docs/ROOM_STATE.md).
MESSAGE = "message"
ROOM_EVENTS = (
    "roomJoined",
    "roomLeft",
    "memberChanged",
    "roomUpdated",
    "messageEdited",
    "messageDeleted",
    "reactionsChanged",
)
# Read state (docs/ROOM_STATE.md): ephemeral, no `_id`; kept in `events` like the above.
READ_STATE_EVENTS = ("readUpdated", "receipts")
# Presence and typing (docs/ROOM_STATE.md): ephemeral, no `_id`, and pushed unasked (a
# peer connecting), so kept apart in `ChatSocket.ephemeral`.
EPHEMERAL_EVENTS = ("presence", "typing")

Match = Callable[[dict[str, Any]], bool]


def by_owner(*users: User) -> Match:
    ids = {u.id for u in users}
    return lambda m: isinstance(m, dict) and str(m.get("owner")) in ids


@dataclass
class Recovered:
    recovered: bool
    last_id: str
    at_index: int  # how many socket messages had arrived when this event came
    refetch: list[str] | None = None  # rooms-aware clients only


class ChatSocket:
    """A python-socketio client that queues and counts every `getAllmessages` it receives.

    `user` and `api` make it a delivery client: its handshake carries the user's token
    and `lastId`, and it refetches a gap over REST. Without them, whoever connects it
    passes the credentials (see `SocketFactory.connect`).
    """

    def __init__(
        self,
        name: str = "socket",
        url: str | None = None,
        user: User | None = None,
        api: Api | None = None,
        *,
        http: aiohttp.ClientSession | None = None,
        send_last_id: bool = True,
        reconnection: bool = True,
        local_addr: str | None = None,
        transports: list[str] | None = ["websocket"],  # noqa: B006 -- never mutated
        js_like_reconnect: bool = True,
        connect_timeout: float = WAIT,
        rooms: bool = False,
    ) -> None:
        self.name = name
        # Rooms-aware (auth `rooms: true`): `message` and the room events instead of
        # `getAllmessages`, each kept in `events` as (name, data), in arrival order.
        self.rooms = rooms
        self.url = url
        self.user = user
        self.api = api
        self.reconnection = reconnection
        # python-socketio's AsyncClient treats an Engine.IO CLOSE packet from the server
        # (what a draining gateway sends) as final and never reconnects; socket.io-client
        # (JS) calls it "transport close" and reconnects. Emulate the JS client.
        self.js_like_reconnect = js_like_reconnect and reconnection
        self._reconnector: asyncio.Task[None] | None = None
        self.send_last_id = send_last_id
        self.local_addr = local_addr
        self.transports = transports
        self.connect_timeout = connect_timeout
        if http is None:
            connector = aiohttp.TCPConnector(local_addr=(local_addr, 0)) if local_addr else None
            http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        self.http = http
        self.sio = socketio.AsyncClient(
            reconnection=reconnection,
            reconnection_delay=0.2,
            reconnection_delay_max=1.0,
            randomization_factor=0.2,
            handle_sigint=False,
            request_timeout=10,
            http_session=self.http,
        )
        self.messages: asyncio.Queue[Any] = asyncio.Queue()  # every message, arrival order
        self.socket_ids: list[int] = []  # the messages' `_id`s, arrival order
        self.rest_ids: list[int] = []  # refetched after recovered:false
        self.rest_room_ids: dict[str, list[int]] = {}  # rooms-aware: refetched, per room
        self.recovered_events: list[Recovered] = []
        self.events: list[tuple[str, Any]] = []  # rooms-aware: every event, arrival order
        self.ephemeral: list[tuple[str, Any]] = []  # rooms-aware: presence and typing
        self.connects = 0
        self.disconnect_reasons: list[str] = []
        self.connect_errors: list[Any] = []
        self.last_id: int | None = None
        self.closing = False
        self._changed = asyncio.Condition()
        self._refetches: set[asyncio.Task[None]] = set()
        self.sio.on(MESSAGE if rooms else EVENT, self._on_message)
        for event_name in (*ROOM_EVENTS, *READ_STATE_EVENTS):
            self.sio.on(event_name, self._room_event_handler(event_name))
        for event_name in EPHEMERAL_EVENTS:
            self.sio.on(event_name, self._ephemeral_handler(event_name))
        self.sio.on(RECOVERED, self._on_recovered)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)

    # -- what the server sees
    def auth(self) -> dict[str, Any]:
        assert self.user is not None, "a ChatSocket without a user is given its auth"
        data: dict[str, Any] = {"token": self.user.token}
        if self.rooms:
            data["rooms"] = True
        if self.send_last_id and self.last_id is not None:
            data["lastId"] = str(self.last_id)
        return data

    @property
    def transport(self) -> str:
        return self.sio.transport()

    async def connect(
        self,
        url: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        wait_timeout: float | None = None,
    ) -> None:
        """Connect to `url` (default: the one given at construction).

        Without `auth`, a socket with a user sends its `auth()` (token and lastId).
        """
        if auth is None and self.user is not None:
            auth = self.auth
        target = url or self.url
        assert target is not None, "connect() needs a URL"
        await self.sio.connect(
            target,
            headers=headers or {},
            auth=auth,
            transports=self.transports,
            wait_timeout=wait_timeout or self.connect_timeout,
        )

    async def connect_like_a_client(
        self, attempt_timeout: float = 10.0, total: float = WAIT
    ) -> None:
        """Connect; retry after an explicit refusal (`connect_error`), as real clients do.

        A server that never answers the handshake is not retried: that is a failure.
        """
        deadline = time.monotonic() + total
        while True:
            errors_before = len(self.connect_errors)
            try:
                await self.connect(wait_timeout=attempt_timeout)
                return
            except socketio.exceptions.ConnectionError as exc:
                if len(self.connect_errors) == errors_before:
                    raise AssertionError(
                        f"{self.name}: the server never answered the Socket.IO CONNECT ({exc})"
                    ) from None
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.5)  # wait-ok: a refused client's retry pace

    async def emit(self, event: str, data: Any) -> None:
        await self.sio.emit(event, data)

    async def close(self) -> None:
        """Disconnect (promptly, also on long-polling), stop any reconnection, close HTTP."""
        self.closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
        for task in list(self._refetches):
            task.cancel()
        try:
            if self.sio.connected and self.sio.eio.current_transport == "polling":
                await self._disconnect_polling()
            else:
                # shutdown() also stops a reconnection under way and waits for it.
                await asyncio.wait_for(self.sio.shutdown(), 10)
        finally:
            await self.http.close()
            # python-engineio opens a session of its own when a reconnect finds ours closed.
            own = self.sio.eio.http
            if own is not None and own is not self.http and not own.closed:
                await own.close()

    async def _disconnect_polling(self) -> None:
        eio = self.sio.eio
        writer = eio.write_loop_task
        if writer is None:
            await self.sio.disconnect()
            return
        # python-engineio's disconnect() waits for the pending long-poll GET, which the
        # server answers only at its next ping (up to 25 s later). A browser aborts that
        # request instead; do the same once the writer has POSTed the close packets.
        closing = asyncio.ensure_future(self.sio.disconnect())
        try:
            await asyncio.wait_for(asyncio.shield(writer), 10)
        finally:
            await self.http.close()  # aborts the pending GET, so the read loop ends
            await asyncio.wait_for(closing, 10)

    # -- events
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _on_connect(self) -> None:
        self.connects += 1
        await self._notify()

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnect_reasons.append(str(reason))
        if (
            self.js_like_reconnect
            and not self.closing
            and str(reason) == "server disconnect"
            and self._reconnector is None
        ):
            self._reconnector = asyncio.create_task(self._reconnect())
        await self._notify()

    async def _reconnect(self) -> None:
        delay = 0.2
        try:
            while not self.closing:
                await asyncio.sleep(delay)  # wait-ok: reconnect backoff, as the JS client does
                delay = min(delay * 2, 1.0)
                if self.sio.connected:
                    return
                try:
                    await self.connect()
                    return
                except (socketio.exceptions.ConnectionError, ValueError):
                    continue
        finally:
            self._reconnector = None

    async def _on_connect_error(self, data: Any) -> None:
        self.connect_errors.append(data)
        await self._notify()

    async def _on_message(self, data: Any) -> None:
        self.messages.put_nowait(data)
        if self.rooms:
            self.events.append((MESSAGE, data))
        message_id = _message_id(data)
        if message_id is not None:
            self.socket_ids.append(message_id)
            self._advance(message_id)
        await self._notify()

    def _advance(self, entry_id: int) -> None:
        """The one cursor of all rooms: the newest `_id` received (docs/ROOMS.md)."""
        self.last_id = entry_id if self.last_id is None else max(self.last_id, entry_id)

    def _room_event_handler(self, name: str) -> Callable[[Any], Any]:
        async def on_room_event(data: Any) -> None:
            self.events.append((name, data))
            entry_id = _message_id(data)
            if entry_id is not None:
                self._advance(entry_id)
            await self._notify()

        return on_room_event

    def _ephemeral_handler(self, name: str) -> Callable[[Any], Any]:
        async def on_ephemeral(data: Any) -> None:
            self.ephemeral.append((name, data))
            await self._notify()

        return on_ephemeral

    async def _on_recovered(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        event = Recovered(
            bool(data["recovered"]),
            str(data["lastId"]),
            len(self.socket_ids),
            data.get("refetch"),
        )
        self.recovered_events.append(event)
        if not event.recovered and self.api is not None:
            refetch = (
                self._refetch_rooms(int(event.last_id), event.refetch or [])
                if self.rooms
                else self._refetch(int(event.last_id))
            )
            task = asyncio.create_task(refetch)
            self._refetches.add(task)
            task.add_done_callback(self._refetches.discard)
        await self._notify()

    async def _refetch(self, after: int) -> None:
        """What a real client does on recovered:false: page the gap in over REST."""
        assert self.api is not None and self.user is not None
        while True:
            try:
                ids = await fetch_after(self.api, self.user, after)
                break
            except (TimeoutError, aiohttp.ClientError, AssertionError):
                await asyncio.sleep(0.2)  # wait-ok: retry pace while the API is down
        self.rest_ids.extend(ids)
        if ids:
            self.last_id = max(self.last_id or 0, ids[-1])
        await self._notify()

    async def _refetch_rooms(self, after: int, rooms: list[str]) -> None:
        """A rooms-aware client's recovered:false: page each room it is told to in over REST."""
        assert self.api is not None and self.user is not None
        for room in rooms:
            while True:
                try:
                    ids = await fetch_after(
                        self.api, self.user, after, path=f"/rooms/{room}/messages"
                    )
                    break
                except (TimeoutError, aiohttp.ClientError, AssertionError):
                    await asyncio.sleep(0.2)  # wait-ok: retry pace while the API is down
            self.rest_room_ids.setdefault(room, []).extend(ids)
            self.rest_ids.extend(ids)
        await self._notify()

    # -- reading messages one by one
    async def next_message(
        self, match: Match | None = None, timeout: float = DELIVERY_TIMEOUT
    ) -> dict:
        """The next queued message satisfying `match` (others, e.g. from other tests, skipped)."""

        async def get() -> dict:
            while True:
                msg = await self.messages.get()
                if match is None or match(msg):
                    return msg

        return await asyncio.wait_for(get(), timeout)

    async def collect(
        self, count: int, match: Match | None = None, timeout: float = DELIVERY_TIMEOUT
    ) -> list[dict]:
        """The next `count` matching messages, in arrival order."""

        async def get() -> list[dict]:
            return [await self.next_message(match, timeout) for _ in range(count)]

        return await asyncio.wait_for(get(), timeout)

    # -- waiting
    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = WAIT, what: str = ""
    ) -> None:
        async def waiter() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(waiter(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: timed out waiting for {what or predicate}: {self.summary()}"
            ) from None

    async def wait_connected(self, connects: int = 1, timeout: float = WAIT) -> None:
        await self.wait_for(
            lambda: self.connects >= connects and self.sio.connected,
            timeout,
            f"connect #{connects}",
        )

    async def wait_ids(self, ids: set[int] | list[int], timeout: float = WAIT) -> None:
        wanted = set(ids)
        await self.wait_for(lambda: wanted <= self.delivered(), timeout, f"{len(wanted)} ids")

    async def wait_recovered(self, count: int = 1, timeout: float = WAIT) -> Recovered:
        await self.wait_for(
            lambda: len(self.recovered_events) >= count, timeout, f"recovered #{count}"
        )
        return self.recovered_events[count - 1]

    async def wait_event(
        self, name: str, match: Callable[[Any], bool] | None = None, timeout: float = WAIT
    ) -> Any:
        """Wait for a received event `name` (rooms-aware) satisfying `match`; its data."""

        def found() -> Any:
            return next(
                (d for n, d in self.events if n == name and (match is None or match(d))), None
            )

        await self.wait_for(lambda: found() is not None, timeout, f"{name} event")
        return found()

    async def wait_ephemeral(
        self, name: str, match: Callable[[Any], bool] | None = None, timeout: float = WAIT
    ) -> Any:
        """Wait for a `presence` or `typing` event satisfying `match`; its data."""

        def found() -> Any:
            return next(
                (d for n, d in self.ephemeral if n == name and (match is None or match(d))), None
            )

        await self.wait_for(lambda: found() is not None, timeout, f"{name} event")
        return found()

    def received(self, name: str, match: Callable[[Any], bool] | None = None) -> list[Any]:
        """The `presence` or `typing` events received so far that satisfy `match`."""
        return [d for n, d in self.ephemeral if n == name and (match is None or match(d))]

    def event_log(self) -> list[tuple[str, str]]:
        """(event name, `_id`) of every event received by a rooms-aware socket, in order."""
        return [(name, str(data.get("_id"))) for name, data in self.events]

    # -- accounting
    def delivered(self) -> set[int]:
        return set(self.socket_ids) | set(self.rest_ids)

    def duplicates(self) -> int:
        return len(self.socket_ids) - len(set(self.socket_ids))

    def lost(self, acknowledged: set[int]) -> set[int]:
        return acknowledged - self.delivered()

    def room_socket_ids(self, room: str) -> list[int]:
        """Rooms-aware: the `_id`s of `room`'s messages received live or replayed, in order."""
        return [
            int(data["_id"])
            for name, data in self.events
            if name == MESSAGE and isinstance(data, dict) and data.get("room") == room
        ]

    def room_delivered(self, room: str) -> set[int]:
        return set(self.room_socket_ids(room)) | set(self.rest_room_ids.get(room, ()))

    def room_duplicates(self, room: str) -> int:
        ids = self.room_socket_ids(room)
        return len(ids) - len(set(ids))

    def summary(self) -> str:
        tail = self.socket_ids[-5:]
        return (
            f"connects={self.connects} socket={len(self.socket_ids)} rest={len(self.rest_ids)} "
            f"last_id={self.last_id} tail={tail} recovered={self.recovered_events[-3:]} "
            f"disconnects={self.disconnect_reasons[-3:]} connect_errors={self.connect_errors[-3:]}"
        )


def _message_id(data: Any) -> int | None:
    """The `_id` of a delivered message as a number; None for anything else."""
    try:
        return int(data["_id"])
    except (TypeError, KeyError, ValueError):
        return None


def _with_query(url: str, **query: str) -> str:
    parts = urlsplit(url)
    q = "&".join(filter(None, [parts.query, urlencode(query)]))
    return urlunsplit(parts._replace(query=q))


@dataclass
class SocketFactory:
    """Opens ChatSockets and remembers them so the fixture can close every one."""

    default_url: str
    opened: list[ChatSocket] = field(default_factory=list)

    def _new(self, local_addr: str | None, transports: list[str] | None) -> ChatSocket:
        connector = aiohttp.TCPConnector(local_addr=(local_addr, 0)) if local_addr else None
        http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        sock = ChatSocket(
            http=http,
            reconnection=False,
            transports=transports,
            connect_timeout=CONNECT_TIMEOUT,
        )
        self.opened.append(sock)
        return sock

    async def connect(
        self,
        token: str | None,
        url: str | None = None,
        *,
        auth_style: str = "header",
        transports: list[str] | None = None,
        local_addr: str | None = None,
    ) -> ChatSocket:
        """Connect and return a ChatSocket; raises socketio.exceptions.ConnectionError."""
        sock = self._new(local_addr, transports)
        url = url or self.default_url
        headers: dict[str, str] = {}
        auth = None
        if token is not None:
            if auth_style == "header":
                headers["Authorization"] = f"Bearer {token}"
            elif auth_style == "auth":
                auth = {"token": token}
            elif auth_style == "query":
                url = _with_query(url, token=token)
            else:
                raise ValueError(auth_style)
        await sock.connect(url, headers=headers, auth=auth)
        return sock

    async def refused(self, token: str | None, url: str | None = None, **kwargs: Any) -> str:
        """Assert that connecting is refused; return the reason the client was given."""
        try:
            sock = await self.connect(token, url, **kwargs)
        except socketio.exceptions.ConnectionError as exc:
            sock = self.opened[-1]
            reasons = [str(exc)]
            for err in sock.connect_errors:
                reasons.append(str(err.get("message", err)) if isinstance(err, dict) else str(err))
            return " | ".join(reasons)
        raise AssertionError(f"connection was accepted (transport {sock.transport})")

    async def close_all(self) -> None:
        opened, self.opened = self.opened, []
        results = await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:  # every socket got its chance to close; now report the first problem
            raise errors[0]


# ---- which gateway holds a session -----------------------------------------------------------


def gateway_holding(gateways: Sequence[Any], sid: str) -> int | None:
    """Index of the gateway whose log says it connected Socket.IO session `sid`."""
    for i, gateway in enumerate(gateways):
        for line in gateway.log_path.read_text(errors="replace").splitlines():
            if sid in line and '"connected"' in line:
                return i
    return None


async def wait_gateway_holding(gateways: Sequence[Any], sid: str, timeout: float = WAIT) -> int:
    deadline = time.monotonic() + timeout
    while (found := gateway_holding(gateways, sid)) is None:  # log lines are written async
        assert time.monotonic() < deadline, f"no gateway logged sid {sid}"
        await asyncio.sleep(0.05)  # wait-ok: polling a log file with a deadline
    return found


# ---- bare Engine.IO clients ------------------------------------------------------------------


async def open_raw_session(
    http: aiohttp.ClientSession, url: str, token: str
) -> aiohttp.ClientWebSocketResponse:
    """A bare Engine.IO WebSocket client connected to `/`: it answers pings only when told to."""
    ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket", autoping=True)
    opened = await ws.receive_str(timeout=CONNECT_TIMEOUT)
    assert opened.startswith("0")
    await ws.send_str("40" + json.dumps({"token": token}))
    connected = await ws.receive_str(timeout=CONNECT_TIMEOUT)
    assert connected.startswith("40"), connected
    return ws


async def wait_closed(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = CONNECT_TIMEOUT
) -> aiohttp.WSMessage:
    """Read until the server closes the WebSocket; return the close message (raises on timeout)."""

    async def closed() -> aiohttp.WSMessage:
        while True:
            message = await ws.receive()
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return message

    return await asyncio.wait_for(closed(), timeout)


Open = Callable[..., Awaitable[ChatSocket]]


@asynccontextmanager
async def socket_opener(gateway_urls: Sequence[str], api: Api) -> AsyncIterator[Open]:
    """`open(user, replica, rooms=True, name="")`: a connected ChatSocket; all closed at the end.

    The sockets do not reconnect by themselves (a test that needs that builds its own).
    """
    opened: list[ChatSocket] = []

    async def open_(user: User, replica: int, *, rooms: bool = True, name: str = "") -> ChatSocket:
        sock = ChatSocket(
            name or f"{user.name}@gw{replica}",
            gateway_urls[replica],
            user,
            api,
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
