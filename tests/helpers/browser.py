"""The browser tests' Chromium and loopback TCP forwarders."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

import aiohttp

from stack import REPO_ROOT

CHROMIUM = os.environ.get("CHAT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Origins the stack allows cross-origin (the React dev server). The page itself is served
# by the API on the public origin, so it must work WITHOUT being listed here.
CROSS_ORIGINS = "http://localhost:3000,http://127.0.0.1:3000"


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


# ---- forwarders: one loopback source address per browser context ---------------------------


class Forwarder:
    """Accepts on 127.0.0.1:<free port>, connects to `target` from `source_ip`.

    `pause()` drops every open connection and refuses new ones (the browser sees the
    server vanish, as when a network path fails); `resume()` lets connections through.
    """

    def __init__(self, target: tuple[str, int], source_ip: str) -> None:
        self.target = target
        self.source_ip = source_ip
        self.paused = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Forwarder:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.paused:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self.target, local_addr=(self.source_ip, 0)
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        self._spawn(self._pipe(reader, up_writer, writer))
        self._spawn(self._pipe(up_reader, writer, up_writer))

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, peer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (dst, peer):  # either side ending ends the pair
                self._writers.discard(w)
                w.transport.abort()

    def drop_connections(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def pause(self) -> None:
        self.paused = True
        self.drop_connections()

    def resume(self) -> None:
        self.paused = False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


async def served_by(lb_url: str, source_ip: str) -> str | None:
    """The gateway replica HAProxy picks for a client at `source_ip` (X-Served-By)."""
    connector = aiohttp.TCPConnector(local_addr=(source_ip, 0), force_close=True)
    async with (
        aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=10),
        ) as http,
        http.get(f"{lb_url}/socket.io/?EIO=4&transport=polling") as resp,
    ):
        await resp.read()
        return resp.headers.get("X-Served-By")


@dataclass
class Route:
    """A forwarder and the gateway replica its clients land on."""

    forwarder: Forwarder
    replica: str

    @property
    def url(self) -> str:
        return self.forwarder.url
