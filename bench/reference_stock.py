"""Reference gateway for `python -m bench --target stock`: python-socketio as documented.

A minimal `socketio.AsyncServer(async_mode="aiohttp")` with a stock
`socketio.AsyncRedisManager` on SOCKETIO_CHANNEL, the same authentication contract as
our gateway (JWT from `auth.token`, `Authorization: Bearer` or `?token=`), emitting what
a write-only `AsyncRedisManager` publishes. No sequence numbers, no gap filling, no
history: the baseline our `OrderedRedisManager` is measured against. It runs on the same
event loop as ours (uvloop when installed) and python-socketio's default JSON, so the
difference measured is the Socket.IO layer.

Env: PORT, HOST (127.0.0.1), REDIS_URL, JWT_SECRET, SOCKETIO_CHANNEL.
"""

from __future__ import annotations

import os

import jwt
import socketio
from aiohttp import web

SECRET = os.environ.get("JWT_SECRET", "dev-only-insecure-jwt-secret-change-me")


def token_of(environ: dict, auth: object) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return auth["token"].removeprefix("Bearer ").strip()
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    for part in environ.get("QUERY_STRING", "").split("&"):
        if part.startswith("token="):
            return part[6:]
    return None


def create_app() -> web.Application:
    manager = socketio.AsyncRedisManager(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        channel=os.environ.get("SOCKETIO_CHANNEL", "socketio"),
    )
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)

    @sio.event
    async def connect(sid: str, environ: dict, auth: object = None) -> None:
        try:
            claims = jwt.decode(
                token_of(environ, auth) or "",
                SECRET,
                algorithms=["HS256"],
                options={"require": ["sub", "exp", "name"]},
            )
        except jwt.InvalidTokenError as exc:
            raise socketio.exceptions.ConnectionRefusedError(f"unauthorized: {exc}") from None
        await sio.save_session(sid, {"user_id": claims["sub"], "name": claims["name"]})

    app = web.Application()
    sio.attach(app)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        import asyncio

        loop = asyncio.new_event_loop()
    web.run_app(
        create_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8301")),
        print=None,
        access_log=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
