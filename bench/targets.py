"""The three gateways under test, how to start them and how to publish to them.

* ours:  `python -m services.realtime_service`; published to exactly as the API's outbox
         relay does (its Lua script: XADD to `<channel>:history` + PUBLISH of a packet
         with `seq {id, prev}`), so the gateway's gap check finds a complete stream.
* stock: bench/reference_stock.py; published to with the packet a write-only
         `socketio.AsyncRedisManager` sends (no seq).
* node:  bench/node/server.js (Socket.IO 4.8 + @socket.io/redis-adapter); published to
         by bench/node/publish.js through @socket.io/redis-emitter.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from bench.common import REPO_ROOT, TEXT, make_message, say, user_id
from bench.room_state import RoomStatePlan, read_notice
from bench.rooms import ROOM_ID_BASE, RoomLayout, room_id
from services.api_service.relay import RelayConfig
from services.shared import defaults
from services.shared.read_state import ReadNotice
from services.shared.redis_contract import (
    GLOBAL_MESSAGE,
    MEMBERSHIPS_STALE,
    PUBLISH_BATCH,
    ROOM_SIZES_COMPLETE,
    EntryInfo,
    Publication,
    RedisKeys,
    emit_packet,
    publish_batch_args,
    publish_batch_keys,
)
from services.shared.rooms import MESSAGE

NODE_DIR = REPO_ROOT / "bench" / "node"
LOG_DIR = REPO_ROOT / ".run" / "bench-logs"
TARGETS = ("ours", "stock", "node")


@dataclass
class Server:
    name: str
    host: str
    port: int
    pid: int | None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Fleet:
    """The gateway replicas of one target, started by us or already running."""

    target: str
    channel: str
    servers: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            if server.popen is not None and server.popen.poll() is None:
                server.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for server in self.servers:
            if server.popen is None:
                continue
            try:
                server.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                server.popen.kill()
                server.popen.wait(5)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_node_modules() -> None:
    if (NODE_DIR / "node_modules" / "socket.io").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: apt-get install nodejs npm (node >= 18)")
    say("installing the Node reference (npm ci --prefix bench/node)")
    subprocess.run(
        [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
        check=True,
        stdout=sys.stderr,
    )


def _argv(target: str) -> list[str]:
    if target == "ours":
        return [sys.executable, "-m", "services.realtime_service"]
    if target == "stock":
        return [sys.executable, str(REPO_ROOT / "bench" / "reference_stock.py")]
    if target == "node":
        ensure_node_modules()
        return [shutil.which("node") or "node", str(NODE_DIR / "server.js")]
    raise ValueError(target)


def _wait_healthy(server: Server, deadline: float, path: str = "/healthz") -> None:
    while time.monotonic() < deadline:
        if server.popen is not None and server.popen.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.popen.returncode}; see {LOG_DIR}")
        try:
            with urllib.request.urlopen(f"{server.url}{path}", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{server.name} did not answer {path} in time; see {LOG_DIR}")


def start_fleet(
    target: str,
    replicas: int,
    channel: str,
    redis_url: str,
    jwt_secret: str,
    extra_env: dict[str, str] | None = None,
) -> Fleet:
    """Start `replicas` gateways of `target` on free loopback ports and wait for /healthz.

    `extra_env` is added to each gateway's environment (settings a measurement needs).
    """
    fleet = Fleet(target, channel)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    argv = _argv(target)
    try:
        for i in range(replicas):
            port = free_port()
            env = dict(os.environ)
            env.update(
                HOST="127.0.0.1",
                PORT=str(port),
                REDIS_URL=redis_url,
                JWT_SECRET=jwt_secret,
                SOCKETIO_CHANNEL=channel,
                REPLICA_NAME=f"bench-{target}-{i + 1}",
                LOG_LEVEL=os.environ.get("BENCH_SERVER_LOG_LEVEL", "WARNING"),
                APP_ENV="development",
                PYTHONUNBUFFERED="1",
                # Every bench client comes from 127.0.0.1: no per-address session cap.
                MAX_PENDING_SESSIONS_PER_ADDRESS="0",
            )
            env.update(extra_env or {})
            log = (LOG_DIR / f"{target}-{i + 1}.log").open("ab")
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            fleet.servers.append(Server(f"{target}-{i + 1}", "127.0.0.1", port, popen.pid, popen))
        deadline = time.monotonic() + 30
        for server in fleet.servers:
            _wait_healthy(server, deadline)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def attach_fleet(target: str, urls: list[str], pids: list[int], channel: str) -> Fleet:
    """Gateways somebody else runs (loopback only); pids, when given, enable CPU/RSS numbers."""
    fleet = Fleet(target, channel)
    for i, url in enumerate(urls):
        host_port = url.split("://", 1)[-1].rstrip("/")
        host, _, port = host_port.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise SystemExit(f"refusing non-loopback target {url}")
        fleet.servers.append(
            Server(f"{target}-{i + 1}", host, int(port), pids[i] if i < len(pids) else None)
        )
    return fleet


# ---- publishers ---------------------------------------------------------------------------


class Publisher:
    """Publishes messages with consecutive seqs; `ts` is stamped at publish time.

    `min_interval` is the least time between two publishes the publisher asks of
    `pace` (the outbox relay's linger, for ours). A publisher that waits like that
    stamps each message with the time it was due (`due_at`), so that the latency
    measured includes its wait.
    """

    min_interval = 0.0
    due_at: Callable[[int], float] | None = None  # seq -> wall time it was due, set by pace

    async def start(self) -> None: ...

    async def publish(self, first: int, count: int) -> None:
        raise NotImplementedError

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


class OursPublisher(Publisher):
    """The relay's Lua script (XADD + PUBLISH atomically), one call per batch as the relay makes.

    In a rooms load each publication names its room (`EntryInfo(room, "message")`) and
    its payload is the message without the room, as the relay publishes a room message;
    the gateways emit it as `message` with the room added to the members of that room.
    """

    def __init__(
        self,
        redis_url: str,
        channel: str,
        stream_max_len: int = 10_000,
        layout: RoomLayout | None = None,
    ) -> None:
        self.layout = layout or RoomLayout(0, 0)
        self.keys = RedisKeys(channel)
        self.stream = self.keys.history_stream
        self.redis = aioredis.Redis.from_url(redis_url)
        self.script = self.redis.register_script(PUBLISH_BATCH)
        self.max_len = stream_max_len
        self.reads: ReadNotices | None = None  # set while a room-state window runs
        # The relay publishes at most once per RELAY_LINGER_MS (services/api_service/relay.py).
        self.min_interval = relay_linger_seconds()
        self.entries = (
            [GLOBAL_MESSAGE]
            if self.layout.global_room
            else [EntryInfo(room_id(r), MESSAGE, None) for r in range(self.layout.rooms)]
        )

    async def start(self) -> None:
        # PUBLISH_BATCH publishes nothing until the membership hashes are marked as
        # applied (the relay marks them after rebuilding them from PostgreSQL; here
        # there is no database: the bench writes them, see seed_memberships).
        await self.redis.set(self.keys.memberships_applied, 0, nx=True)

    async def publish(self, first: int, count: int) -> None:
        publications = []
        for seq in range(first, first + count):
            # Lingering, a message waits for its publish: its latency counts from when it
            # was due. Otherwise it is stamped as it is published, like every target's.
            lingering = self.min_interval > 0 and self.due_at is not None
            now = self.due_at(seq) if lingering and self.due_at else time.time()
            wire = make_message(seq, now)
            entry = self.entries[self.layout.room_of_seq(seq)]
            publications.append(
                Publication(
                    seq,
                    seq - 1,
                    orjson.dumps(wire),
                    emit_packet(wire, seq, seq - 1, entry),
                    int(now * 1000),
                    entry,
                )
            )
        published = await self.script(
            keys=publish_batch_keys(self.keys),
            args=publish_batch_args(self.keys, self.max_len, publications),
        )
        if published == MEMBERSHIPS_STALE:
            raise RuntimeError(f"PUBLISH_BATCH refused: {self.keys.memberships_applied} missing")
        if self.reads is not None:
            await self.reads.publish(self.redis, self.keys.reads_channel, first, count)

    async def close(self) -> None:
        await self.redis.delete(self.stream)
        await self.redis.aclose()


class ReadNotices:
    """One read marker per message, published as the API does after its upsert.

    For each message a member of its room (`RoomStatePlan.reader`) has read it: the
    notices go out on `<prefix>:reads` right after the batch with their messages, in
    one channel message per batch as the API's linger gathers them. `sent` counts them.
    """

    def __init__(self, plan: RoomStatePlan) -> None:
        self.plan = plan
        self.sent = 0

    async def publish(self, redis: aioredis.Redis, channel: str, first: int, count: int) -> None:
        notices = []
        for seq in range(first, first + count):
            room = self.plan.layout.room_of_seq(seq)
            notices.append(
                read_notice(
                    user_id(self.plan.reader(seq)), room_id(room), seq, self.plan.receipts_on(room)
                )
            )
        await redis.publish(channel, ReadNotice.encode_all(notices))
        self.sent += count


class StockPublisher(Publisher):
    """What `AsyncRedisManager(write_only=True).emit("getAllmessages", msg)` publishes."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.channel = channel
        self.redis = aioredis.Redis.from_url(redis_url)

    async def publish(self, first: int, count: int) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for seq in range(first, first + count):
            packet = {
                "method": "emit",
                "event": "getAllmessages",
                "data": [make_message(seq, time.time())],
                "binary": False,
                "namespace": "/",
                "room": None,
                "skip_sid": None,
                "callback": None,
                "host_id": "bench-publisher",
            }
            pipe.publish(self.channel, orjson.dumps(packet))
        await pipe.execute()

    async def close(self) -> None:
        await self.redis.aclose()


class NodePublisher(Publisher):
    """bench/node/publish.js (@socket.io/redis-emitter), driven line by line over stdin.

    In a rooms load it computes each seq's room as bench/rooms.py does and emits with
    `.to(room)`.
    """

    def __init__(self, redis_url: str, channel: str, layout: RoomLayout | None = None) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.layout = layout or RoomLayout(0, 0)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        ensure_node_modules()
        env = dict(
            os.environ,
            REDIS_URL=self.redis_url,
            SOCKETIO_CHANNEL=self.channel,
            BENCH_TEXT=TEXT,
            BENCH_ROOMS=str(self.layout.rooms),
            BENCH_ROOM_ID_BASE=str(ROOM_ID_BASE),
        )
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node",
            str(NODE_DIR / "publish.js"),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def publish(self, first: int, count: int) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{first} {count}\n".encode())
        await self.proc.stdin.drain()

    async def close(self) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.stdout.readline(), 10)
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class ApiPublisher(Publisher):
    """Posts through `POST /messages` on a real API process (throwaway database).

    The API's outbox relay then publishes to the gateways. Message `_id`s are assigned
    by the database in order from 1, which is also the bench's seq numbering; the text
    of each message is its send time, so latency is POST sent -> receipt.
    """

    def __init__(self, redis_url: str, channel: str, jwt_secret: str) -> None:
        import uuid

        self.redis_url = redis_url
        self.channel = channel
        self.jwt_secret = jwt_secret
        server = defaults.DATABASE_URL.rsplit("/", 1)[0]
        self.database_url = f"{server}/bench_{uuid.uuid4().hex[:12]}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending: set[asyncio.Task[None]] = set()
        self.failures = 0

    async def start(self) -> None:
        import aiohttp

        await asyncio.to_thread(self._start_api)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        account = {
            "name": "Bench",
            "email": f"bench-{self.channel}@example.org",
            "password": "bench-password",
        }
        async with self.http.post(f"{self.url}/signup", json=account) as reply:
            assert reply.status == 201, await reply.text()
        async with self.http.post(f"{self.url}/signin", json=account) as reply:
            self.auth = {"Authorization": f"Bearer {(await reply.json())['token']}"}
        say(f"ours via API: {self.url} on {self.database_url.rsplit('/', 1)[1]}")

    def _start_api(self) -> None:
        from stack import infra

        infra.ensure_database(self.database_url)
        port = infra.free_port()
        self.url = f"http://127.0.0.1:{port}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PORT": str(port),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SOCKETIO_CHANNEL": self.channel,
            "JWT_SECRET": self.jwt_secret,
            "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
            "RATE_LIMIT_AUTH_PER_MINUTE": "0",
            "LOG_LEVEL": "WARNING",
        }
        log = (LOG_DIR / f"api-{self.channel}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.api_service"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=REPO_ROOT,
        )
        api = Server("api", "127.0.0.1", port, self.proc.pid, self.proc)
        _wait_healthy(api, time.monotonic() + 30, path="/readyz")

    async def publish(self, first: int, count: int) -> None:
        for _ in range(count):
            task = asyncio.create_task(self._post())
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _post(self) -> None:
        import uuid

        body = {"id": str(uuid.uuid4()), "text": repr(time.time())}
        async with self.http.post(f"{self.url}/messages", json=body, headers=self.auth) as reply:
            if reply.status != 201:
                self.failures += 1

    async def flush(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending)
        if self.failures:
            say(f"ours via API: {self.failures} POSTs failed")

    async def close(self) -> None:
        from stack import infra

        await self.flush()
        await self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.proc.wait, 15)
        await asyncio.to_thread(infra.drop_database, self.database_url)


def relay_linger_seconds() -> float:
    """The relay's linger as configured for the API (`RELAY_LINGER_MS`), or its default."""
    raw = os.environ.get("RELAY_LINGER_MS", "").strip()
    return float(raw) / 1000 if raw else RelayConfig.linger_seconds


def make_publisher(
    target: str,
    redis_url: str,
    channel: str,
    *,
    via_api: bool = False,
    jwt_secret: str = "",
    layout: RoomLayout | None = None,
) -> Publisher:
    layout = layout or RoomLayout(0, 0)
    if not layout.global_room and (target == "stock" or via_api):
        raise SystemExit("--rooms runs against ours and node only, published to Redis")
    if target == "ours" and via_api:
        return ApiPublisher(redis_url, channel, jwt_secret)
    if target == "ours":
        return OursPublisher(redis_url, channel, layout=layout)
    if target == "stock":
        return StockPublisher(redis_url, channel)
    return NodePublisher(redis_url, channel, layout)


def seed_memberships(
    redis_url: str,
    channel: str,
    layout: RoomLayout,
    chunk: int = 1000,
    extra: dict[int, int] | None = None,
) -> None:
    """Write each bench user's membership hash, the room sizes, and mark the hashes
    applied, as the relay's rebuild does (services/api_service/relay.py), before any
    client connects.

    User i (the i-th minted token, `bench.common.user_id(i)`) is a member of its room only:
    `P:rooms:<user>` = {room id: 0, "@": 0}. `extra` adds users (user index -> room
    number: the churn users of a `--room-state` run). `P:room-sizes` gets each room's
    member count and `@` = 1 (what presence and typing read to decide a room is small
    enough), then `P:memberships` = 0 (applied up to entry 0, before the bench's first
    message). Our gateways read the hash when a client connects and put the connection
    in those rooms.
    """
    import redis as sync_redis

    keys = RedisKeys(channel)
    members = {i: layout.room_of_client(i) for i in range(layout.clients)} | (extra or {})
    sizes: dict[str, int] = {}
    client = sync_redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for n, (i, room_number) in enumerate(members.items()):
            room = room_id(room_number)
            sizes[room] = sizes.get(room, 0) + 1
            pipe.hset(keys.user_rooms(user_id(i)), mapping={room: 0, "@": 0})
            if (n + 1) % chunk == 0:
                pipe.execute()
        pipe.execute()
        client.hset(keys.room_sizes, mapping={**sizes, ROOM_SIZES_COMPLETE: 1})
        client.set(keys.memberships_applied, 0)
    finally:
        client.close()


def redis_server_pid(redis_url: str) -> int | None:
    async def ask() -> int | None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            info = await client.info("server")
            return int(info.get("process_id", 0)) or None
        finally:
            await client.aclose()

    try:
        return asyncio.run(ask())
    except Exception:  # noqa: BLE001 - only a nicety for the report
        return None


def node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


def package_version(path: Path) -> str:
    try:
        return orjson.loads((path / "package.json").read_bytes()).get("version", "")
    except OSError:
        return ""
