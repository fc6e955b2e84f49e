"""Helpers of the integration suite: REST client, Socket.IO client, tokens, the stack handle."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import asyncpg
import jwt
import socketio

from stack import REPO_ROOT, free_port
from stack.process import ManagedProcess, wait_http_ok

# Generous upper bounds for waiting on events: they only bound a hang, a passing test
# never waits for them (no performance assertions hide in here).
DELIVERY_TIMEOUT = 15.0
CONNECT_TIMEOUT = 15.0
START_TIMEOUT = 90.0

ALLOWED_ORIGIN = os.environ.get("CHAT_ALLOWED_ORIGIN", "http://localhost:3000")
DISALLOWED_ORIGIN = "http://evil.example"
MESSAGE_MAX_CHARS = int(os.environ.get("CHAT_MESSAGE_MAX_CHARS", "4000"))
MAX_BODY_BYTES = int(os.environ.get("CHAT_MAX_BODY_BYTES", "65536"))
HISTORY_DEFAULT_LIMIT = 100
RATE_LIMIT_MESSAGES_PER_MINUTE = int(os.environ.get("CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE", "300"))


@dataclass(frozen=True)
class ChatStack:
    """Where the system under test answers."""

    lb_url: str  # the one public origin (REST + /socket.io/), as the React client uses it
    api_url: str  # the API directly (== lb_url for an external stack without CHAT_API_URL)
    gateway_urls: tuple[str, ...]  # direct gateway URLs; empty when unknown
    jwt_secret: str | None  # known only for a local stack or with CHAT_JWT_SECRET
    external: bool
    log_dir: Path | None = None
    # The services' environment (local stacks only): lets a test start one more
    # process, e.g. an API with tighter limits, against the same database and Redis.
    service_env: dict[str, str] = field(default_factory=dict)


@dataclass
class User:
    """A signed-up and signed-in user."""

    id: str
    name: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def call_maybe_async(fn: Callable[[], Any]) -> Any:
    """Run a launcher method that may be sync (blocking: off the loop) or a coroutine."""
    if inspect.iscoroutinefunction(fn):
        return await fn()
    return await asyncio.to_thread(fn)


def external_stack() -> ChatStack:
    base = os.environ["CHAT_BASE_URL"].rstrip("/")
    gateways = tuple(
        u.strip().rstrip("/")
        for u in os.environ.get("CHAT_GATEWAY_URLS", "").split(",")
        if u.strip()
    )
    return ChatStack(
        lb_url=base,
        api_url=os.environ.get("CHAT_API_URL", base).rstrip("/"),
        gateway_urls=gateways,
        jwt_secret=os.environ.get("CHAT_JWT_SECRET") or None,
        external=True,
    )


@dataclass
class Reply:
    """Status, headers and decoded JSON body (None when the body is not JSON)."""

    status: int
    headers: Any
    body: Any
    text: str


class Api:
    """Thin REST client for the contract's endpoints."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        base_url: str | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": hdrs, "params": params}
        if json is not None:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
        url = (base_url or self.base_url) + path
        async with self.http.request(method, url, **kwargs) as resp:
            text = await resp.text()
            try:
                body = await resp.json(content_type=None) if text else None
            except ValueError:
                body = None
            return Reply(resp.status, resp.headers, body, text)

    async def signup(self, name: str, email: str, password: str) -> Reply:
        return await self.request(
            "POST", "/signup", json={"name": name, "email": email, "password": password}
        )

    async def signin(self, email: str, password: str) -> Reply:
        return await self.request("POST", "/signin", json={"email": email, "password": password})

    async def post_message(
        self, user: User, text: str, client_id: str | None = None, **extra: Any
    ) -> Reply:
        body = {"id": client_id or str(uuid.uuid4()), "text": text, **extra}
        return await self.request("POST", "/messages", token=user.token, json=body)

    async def send(self, user: User, text: str, client_id: str | None = None) -> dict[str, Any]:
        """POST a message the way the React client does and return the stored message."""
        body = {"owner": user.id, "userName": user.name}
        reply = await self.post_message(user, text, client_id, **body)
        assert reply.status == 201, (reply.status, reply.text)
        return reply.body

    async def history(self, user: User, **params: str | int) -> list[dict[str, Any]]:
        reply = await self.request(
            "GET", "/messages", token=user.token, params={k: str(v) for k, v in params.items()}
        )
        assert reply.status == 200, (reply.status, reply.text)
        assert isinstance(reply.body, list), reply.text
        return reply.body


_counter = itertools.count()


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def unique_name(prefix: str = "User") -> str:
    return f"{prefix} {next(_counter)} {uuid.uuid4().hex[:6]}"[:30]


def make_token(secret: str, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def reissued(token: str, secret: str, **changes: Any) -> str:
    """The claims of a real token, changed as asked and signed with `secret`."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    return make_token(secret, claims)


def expired_token(token: str, secret: str) -> str:
    now = int(time.time())
    return reissued(token, secret, iat=now - 7200, exp=now - 3600)


def assert_error(reply: Reply, status: int) -> str:
    """The contract's error shape: the status and JSON {"message": str, "code": str}."""
    assert reply.status == status, (reply.status, reply.text)
    assert isinstance(reply.body, dict), f"error body is not a JSON object: {reply.text!r}"
    message = reply.body.get("message")
    assert isinstance(message, str) and message.strip(), reply.body
    assert isinstance(reply.body.get("code"), str), reply.body
    return message


Match = Callable[[dict[str, Any]], bool]


def by_owner(*users: User) -> Match:
    ids = {u.id for u in users}
    return lambda m: isinstance(m, dict) and str(m.get("owner")) in ids


class ChatSocket:
    """A python-socketio client that queues every `getAllmessages` it receives."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.sio = socketio.AsyncClient(
            reconnection=False, handle_sigint=False, request_timeout=10, http_session=http
        )
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.connect_errors: list[Any] = []
        self.sio.on("getAllmessages", self._on_message)
        self.sio.on("connect_error", self._on_connect_error)

    async def _on_message(self, data: Any) -> None:
        self.messages.put_nowait(data)

    async def _on_connect_error(self, data: Any) -> None:
        self.connect_errors.append(data)

    @property
    def transport(self) -> str:
        return self.sio.transport()

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

    async def emit(self, event: str, data: Any) -> None:
        await self.sio.emit(event, data)

    async def close(self) -> None:
        """Disconnect (promptly, also on long-polling) and close the HTTP session."""
        try:
            if self.sio.connected:
                await self._disconnect()
        finally:
            await self.http.close()

    async def _disconnect(self) -> None:
        eio = self.sio.eio
        writer = eio.write_loop_task
        if eio.current_transport != "polling" or writer is None:
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


def _with_query(url: str, **query: str) -> str:
    parts = urlsplit(url)
    q = "&".join(filter(None, [parts.query, urlencode(query)]))
    return urlunsplit(parts._replace(query=q))


@dataclass
class SocketFactory:
    """Opens ChatSockets and remembers them so the fixture can close every one."""

    default_url: str
    opened: list[ChatSocket] = field(default_factory=list)

    def _new(self, local_addr: str | None) -> ChatSocket:
        connector = aiohttp.TCPConnector(local_addr=(local_addr, 0)) if local_addr else None
        http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        sock = ChatSocket(http)
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
        sock = self._new(local_addr)
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
        await sock.sio.connect(
            url, headers=headers, auth=auth, transports=transports, wait_timeout=CONNECT_TIMEOUT
        )
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


@asynccontextmanager
async def extra_process(
    chat_stack: ChatStack, module: str, env: dict[str, str], name: str
) -> AsyncIterator[str]:
    """One more API or gateway process on the stack's database and Redis; yields its URL."""
    port = free_port()
    assert chat_stack.log_dir is not None
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", module],
        {**os.environ, **chat_stack.service_env, "PORT": str(port), **env},
        Path(chat_stack.log_dir) / f"{name}.log",
        REPO_ROOT,
    )
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_http_ok, proc, f"{url}/readyz", asyncio.get_running_loop().time() + 30)
        yield url
    finally:
        await asyncio.to_thread(proc.stop)


@asynccontextmanager
async def local_chat_stack(
    kind: str, extra_env: dict[str, str] | None = None, **config: Any
) -> AsyncIterator[ChatStack]:
    """The whole topology as local processes on a throwaway database and a private channel.

    `kind` names the database, the Redis channel and the log folder under
    test-artifacts/, so concurrent suites never share state; `config` goes to
    `StackConfig.ephemeral` (e.g. `haproxy_cfg`).
    """
    from stack import LocalStack, StackConfig

    run_id = uuid.uuid4().hex
    admin_url = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    db_name = f"chat_{kind}_{run_id}"
    jwt_secret = f"test-secret-{uuid.uuid4().hex}"
    log_dir = REPO_ROOT / "test-artifacts" / f"{kind}-{run_id[:12]}"
    env = {
        "JWT_SECRET": jwt_secret,
        "SOCKETIO_CHANNEL": f"chat-{kind}-{run_id}",
        "APP_ENV": "development",
        "LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    database_url = await create_database(admin_url, db_name)
    try:
        local = LocalStack(
            StackConfig.ephemeral(
                database_url, redis_url, gateways=2, extra_env=env, log_dir=log_dir, **config
            )
        )
        try:
            await call_maybe_async(local.start)
            yield ChatStack(
                lb_url=local.lb_url.rstrip("/"),
                api_url=local.api_url.rstrip("/"),
                gateway_urls=tuple(u.rstrip("/") for u in local.gateway_urls),
                jwt_secret=jwt_secret,
                external=False,
                log_dir=log_dir,
                service_env={"DATABASE_URL": database_url, "REDIS_URL": redis_url, **env},
            )
        finally:
            await call_maybe_async(local.stop)
    finally:
        await drop_database(admin_url, db_name)


async def sign_up_and_in(api: Api, name: str | None = None) -> User:
    """A fresh account (unique email), signed in."""
    name = name or unique_name()
    email, password = unique_email(), f"pw-{uuid.uuid4().hex}"
    up = await api.signup(name, email, password)
    assert up.status == 201, (up.status, up.text)
    signin = await api.signin(email, password)
    assert signin.status == 200, (signin.status, signin.text)
    return User(
        id=str(signin.body["userId"]),
        name=signin.body["name"],
        email=email,
        password=password,
        token=signin.body["token"],
    )
