"""The REST client of the contract's endpoints, users, tokens and the error shape."""

from __future__ import annotations

import itertools
import json as json_module
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import jwt


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


@asynccontextmanager
async def rest_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for REST calls (no cookies: the React client sends none)."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


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


async def new_user(api: Api) -> User:
    return await sign_up_and_in(api)


async def post(api: Api, user: User, text: str, client_id: str | None = None) -> int:
    reply = await api.post_message(user, text, client_id)
    assert reply.status in (200, 201), (reply.status, reply.text)
    return int(reply.body["_id"])


async def fetch_after(
    api: Api, user: User, after: int, base_url: str | None = None, path: str = "/messages"
) -> list[int]:
    """Every message id after `after`, paging through GET `path`?after= (oldest first).

    `path` is the legacy history by default, or a room's (`/rooms/{room}/messages`).
    """
    ids: list[int] = []
    while True:
        reply = await api.request(
            "GET",
            path,
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


# ---- rooms (docs/ROOMS.md) ----------------------------------------------------------------

GLOBAL_ROOM = "00000000-0000-0000-0000-000000000000"


async def create_room(
    api: Api,
    owner: User,
    *,
    kind: str = "public",
    name: str | None = None,
    topic: str = "",
    members: tuple[User, ...] = (),
) -> dict[str, Any]:
    """A new room owned by `owner` (201 asserted); its Room object."""
    body = {
        "kind": kind,
        "name": name or unique_name("Room"),
        "topic": topic,
        "members": [m.id for m in members],
    }
    reply = await api.request("POST", "/rooms", token=owner.token, json=body)
    assert reply.status == 201, (reply.status, reply.text)
    return dict(reply.body)


async def room_call(
    api: Api, user: User, method: str, path: str, json: Any = None, **params: str | int
) -> Reply:
    """`method` on a room route as `user`, e.g. room_call(api, ann, "POST", f"/rooms/{id}/join")."""
    return await api.request(
        method,
        path,
        token=user.token,
        json=json,
        params={k: str(v) for k, v in params.items()} or None,
    )


async def post_to_room(
    api: Api, user: User, room: str, text: str, client_id: str | None = None
) -> Reply:
    body = {"id": client_id or str(uuid.uuid4()), "text": text}
    return await api.request("POST", f"/rooms/{room}/messages", token=user.token, json=body)


async def add_to_room(api: Api, by: User, room: str, user: User, role: str = "member") -> Reply:
    body = {"userId": user.id, "role": role}
    return await api.request("POST", f"/rooms/{room}/members", token=by.token, json=body)


async def open_direct(api: Api, user: User, other: User) -> Reply:
    return await api.request("POST", "/rooms/direct", token=user.token, json={"userId": other.id})


async def room_events(database_url: str, room: str) -> list[dict[str, Any]]:
    """Every room event of `room` as stored (db/room_events.py), in order."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, kind, subject::text, payload::text FROM room_events"
            " WHERE room_id = $1::uuid ORDER BY id",
            room,
        )
    finally:
        await conn.close()
    return [
        {
            "id": row["id"],
            "kind": row["kind"],
            "subject": row["subject"],
            "payload": json_module.loads(row["payload"]),
        }
        for row in rows
    ]
