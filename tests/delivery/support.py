"""Helpers of the delivery suite: private Redis/PostgreSQL servers, counting clients, a writer.

Everything here drives real processes. Nothing sleeps to "let things settle": waits are
on events with a timeout; the only sleeps are the *faults themselves* (a server staying
down for a moment) and the writer's pace, and those lines say `# wait-ok`.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from stack import free_port
from tests.integration.harness import Api, User, sign_up_and_in

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"

EVENT = "getAllmessages"
RECOVERED = "recovered"
WAIT = 20.0  # upper bound of any wait on an event; a passing test never reaches it


# ---- private servers ----------------------------------------------------------------------


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port(
    port: int, up: bool, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port) == up:
            return
        if up and proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        time.sleep(0.05)  # wait-ok: polling a port with a deadline
    raise TimeoutError(f"port {port} not {'open' if up else 'closed'} after {timeout}s")


class PrivateRedis:
    """A redis-server of our own on a free port, so faults never touch the shared 6379."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="chat-redis-"))
        self.log_path = log_dir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make install)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self.dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_port(self.port, True, 10, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found (apt-get install postgresql)")
    return path


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb in a temp dir) we may stop and start at will."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chat-pg-"))
        self.data = self.root / "data"
        self.log_path = log_dir / f"postgres-{self.port}.log"
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen[bytes] | None = None
        self._prefix: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]

    def init(self) -> None:
        subprocess.run(
            [
                *self._prefix,
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self._prefix,
                    _pg_bin("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_port(self.port, True, 30, self.proc)
        deadline = time.monotonic() + 30
        ready = [
            _pg_bin("pg_isready"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
        ]
        while subprocess.run(ready, check=False).returncode != 0:  # open port != accepting
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL on {self.port} not ready; see {self.log_path}")
            time.sleep(0.05)  # wait-ok: polling readiness with a deadline

    def stop(self) -> None:
        """Fast shutdown (SIGINT): active transactions are rolled back, clients cut off."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---- users ---------------------------------------------------------------------------------


async def new_user(api: Api) -> User:
    return await sign_up_and_in(api)


async def post(api: Api, user: User, text: str, client_id: str | None = None) -> int:
    reply = await api.post_message(user, text, client_id)
    assert reply.status in (200, 201), (reply.status, reply.text)
    return int(reply.body["_id"])


async def fetch_after(api: Api, user: User, after: int, base_url: str | None = None) -> list[int]:
    """Every message id after `after`, paging through GET /messages?after= (oldest first)."""
    ids: list[int] = []
    while True:
        reply = await api.request(
            "GET",
            "/messages",
            token=user.token,
            params={"after": str(after), "limit": "500"},
            base_url=base_url,
        )
        assert reply.status == 200, (reply.status, reply.text)
        page = [int(m["_id"]) for m in reply.body]
        if not page:
            return ids
        ids.extend(page)
        after = page[-1]


# ---- a counting Socket.IO client -------------------------------------------------------------


@dataclass
class Recovered:
    recovered: bool
    last_id: str
    at_index: int  # how many socket messages had arrived when this event came


class Receiver:
    """A python-socketio client that behaves like a careful real client.

    * its `auth` is a callable, so every (re)connect sends `lastId` = newest `_id` it holds;
    * on `recovered: false` it refetches the gap over REST (`GET /messages?after=`);
    * it keeps every `_id` it received, in arrival order, duplicates included;
    * like the official JavaScript client (and unlike a stock python-socketio client, see
      `js_like_reconnect`), it reconnects when the server closes the Engine.IO session.
    """

    def __init__(
        self,
        name: str,
        url: str,
        user: User,
        api: Api,
        *,
        send_last_id: bool = True,
        reconnection: bool = True,
        local_addr: str | None = None,
        transports: list[str] | None = None,
        js_like_reconnect: bool = True,
    ) -> None:
        self.name = name
        self.reconnection = reconnection
        # python-socketio's AsyncClient treats an Engine.IO CLOSE packet from the server
        # (what a draining gateway sends) as final and never reconnects; socket.io-client
        # (JS) calls it "transport close" and reconnects. Emulate the JS client.
        self.js_like_reconnect = js_like_reconnect and reconnection
        self._reconnector: asyncio.Task[None] | None = None
        self.url = url
        self.user = user
        self.api = api
        self.send_last_id = send_last_id
        self.local_addr = local_addr
        self.transports = transports or ["websocket"]
        connector = aiohttp.TCPConnector(local_addr=(local_addr, 0)) if local_addr else None
        self.http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        self.sio = socketio.AsyncClient(
            reconnection=reconnection,
            reconnection_delay=0.2,
            reconnection_delay_max=1.0,
            randomization_factor=0.2,
            handle_sigint=False,
            request_timeout=10,
            http_session=self.http,
        )
        self.socket_ids: list[int] = []  # via getAllmessages, arrival order
        self.rest_ids: list[int] = []  # refetched after recovered:false
        self.recovered_events: list[Recovered] = []
        self.connects = 0
        self.disconnect_reasons: list[str] = []
        self.connect_errors: list[Any] = []
        self.last_id: int | None = None
        self.closing = False
        self._changed = asyncio.Condition()
        self._refetches: set[asyncio.Task[None]] = set()
        self.sio.on(EVENT, self._on_message)
        self.sio.on(RECOVERED, self._on_recovered)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)

    # -- what the server sees
    def auth(self) -> dict[str, str]:
        data = {"token": self.user.token}
        if self.send_last_id and self.last_id is not None:
            data["lastId"] = str(self.last_id)
        return data

    async def connect(self) -> None:
        await self.sio.connect(
            self.url, auth=self.auth, transports=self.transports, wait_timeout=WAIT
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
                await self.sio.connect(
                    self.url,
                    auth=self.auth,
                    transports=self.transports,
                    wait_timeout=attempt_timeout,
                )
                return
            except socketio.exceptions.ConnectionError as exc:
                if len(self.connect_errors) == errors_before:
                    raise AssertionError(
                        f"{self.name}: the server never answered the Socket.IO CONNECT ({exc})"
                    ) from None
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.5)  # wait-ok: a refused client's retry pace

    async def close(self) -> None:
        self.closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
        for task in list(self._refetches):
            task.cancel()
        try:
            # shutdown() also stops a reconnection under way and waits for it.
            await asyncio.wait_for(self.sio.shutdown(), 10)
        finally:
            await self.http.close()
            # python-engineio opens a session of its own when a reconnect finds ours closed.
            own = self.sio.eio.http
            if own is not None and own is not self.http and not own.closed:
                await own.close()

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
        message_id = int(data["_id"])
        self.socket_ids.append(message_id)
        self.last_id = message_id if self.last_id is None else max(self.last_id, message_id)
        await self._notify()

    async def _on_recovered(self, data: Any) -> None:
        event = Recovered(bool(data["recovered"]), str(data["lastId"]), len(self.socket_ids))
        self.recovered_events.append(event)
        if not event.recovered:
            task = asyncio.create_task(self._refetch(int(event.last_id)))
            self._refetches.add(task)
            task.add_done_callback(self._refetches.discard)
        await self._notify()

    async def _refetch(self, after: int) -> None:
        """What a real client does on recovered:false: page the gap in over REST."""
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

    # -- accounting
    def delivered(self) -> set[int]:
        return set(self.socket_ids) | set(self.rest_ids)

    def duplicates(self) -> int:
        return len(self.socket_ids) - len(set(self.socket_ids))

    def lost(self, acknowledged: set[int]) -> set[int]:
        return acknowledged - self.delivered()

    def summary(self) -> str:
        tail = self.socket_ids[-5:]
        return (
            f"connects={self.connects} socket={len(self.socket_ids)} rest={len(self.rest_ids)} "
            f"last_id={self.last_id} tail={tail} recovered={self.recovered_events[-3:]} "
            f"disconnects={self.disconnect_reasons[-3:]} connect_errors={self.connect_errors[-3:]}"
        )


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


# ---- a steady writer ----------------------------------------------------------------------


@dataclass
class Writer:
    """Posts at a steady rate; a failed POST is retried with the SAME id until acknowledged.

    `route(n)` may send the first attempt of the n-th message elsewhere (e.g. to an API
    process armed with a failpoint); retries always go to `api`.
    """

    api: Api
    user: User
    rate: float = 20.0
    route: Callable[[int], str | None] = lambda n: None
    acknowledged: dict[str, int] = field(default_factory=dict)  # client uuid -> _id
    attempts: int = 0
    failures: int = 0
    retried_ok: int = 0  # acknowledged only after at least one failed attempt
    repeats: int = 0  # acknowledged with 200: the message had already been stored
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _acked: asyncio.Condition = field(default_factory=asyncio.Condition)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 60)

    async def wait_acks(self, count: int, timeout: float = WAIT) -> None:
        async def waiter() -> None:
            async with self._acked:
                await self._acked.wait_for(lambda: len(self.acknowledged) >= count)

        await asyncio.wait_for(waiter(), timeout)

    def ids(self) -> set[int]:
        return set(self.acknowledged.values())

    async def _run(self) -> None:
        n = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            n += 1
            await self._send(n, str(uuid.uuid4()))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)  # wait-ok: the writer's pace
                except TimeoutError:
                    pass
            else:
                next_at = time.monotonic()

    async def _send(self, n: int, client_id: str) -> None:
        base_url = self.route(n)
        failed = False
        while True:
            self.attempts += 1
            try:
                reply = await asyncio.wait_for(
                    self.api.request(
                        "POST",
                        "/messages",
                        token=self.user.token,
                        json={"id": client_id, "text": f"steady {n}"},
                        base_url=base_url,
                    ),
                    10,
                )
                if reply.status in (200, 201):
                    self.acknowledged[client_id] = int(reply.body["_id"])
                    self.retried_ok += failed
                    self.repeats += reply.status == 200
                    async with self._acked:
                        self._acked.notify_all()
                    return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            failed = True
            self.failures += 1
            base_url = None  # retries go to the healthy API
            await asyncio.sleep(0.1)  # wait-ok: retry pace of a client whose POST failed


def report(
    scenario: str, writer: Writer, receivers: list[Receiver]
) -> tuple[str, dict[str, set[int]]]:
    acknowledged = writer.ids()
    lost = {r.name: r.lost(acknowledged) for r in receivers}
    line = (
        f"scenario={scenario} acknowledged={len(acknowledged)} "
        f"delivered={[len(r.delivered() & acknowledged) for r in receivers]} "
        f"duplicates={[r.duplicates() for r in receivers]} "
        f"lost={[len(lost[r.name]) for r in receivers]} "
        f"refetched={[len(r.rest_ids) for r in receivers]} "
        f"recovered_false={[sum(not e.recovered for e in r.recovered_events) for r in receivers]} "
        f"reconnects={[r.connects - 1 for r in receivers]} "
        f"post_failures={writer.failures} acked_as_repeat={writer.repeats}"
    )
    return line, lost
