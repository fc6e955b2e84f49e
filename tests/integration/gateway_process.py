"""A gateway process of its own for a test, with what attack tests read from it: its memory and its log."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from stack import REPO_ROOT, free_port
from stack.process import ManagedProcess, wait_http_ok
from tests.integration.harness import CONNECT_TIMEOUT, ChatStack


@dataclass(frozen=True)
class Gateway:
    url: str
    pid: int
    log_path: Path

    def rss_bytes(self) -> int:
        """Resident memory of the gateway process (VmRSS in /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"

    @property
    def polling_url(self) -> str:
        return f"{self.url}/socket.io/?EIO=4&transport=polling"


@asynccontextmanager
async def gateway_process(chat_stack: ChatStack, name: str, env: dict[str, str]) -> AsyncIterator[Gateway]:
    """One more gateway on the stack's Redis with `env` on top of the stack's settings."""
    port = free_port()
    assert chat_stack.log_dir is not None
    log_path = Path(chat_stack.log_dir) / f"{name}.log"
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", "services.realtime_service"],
        {**os.environ, **chat_stack.service_env, "PORT": str(port), **env},
        log_path,
        REPO_ROOT,
    )
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_http_ok, proc, f"{url}/readyz", time.monotonic() + 30)
        assert proc.pid is not None
        yield Gateway(url, proc.pid, log_path)
    finally:
        await asyncio.to_thread(proc.stop)


async def polling_handshake(http: aiohttp.ClientSession, gateway: Gateway, **headers: str) -> str:
    """Open a long-polling Engine.IO session; return its sid."""
    async with http.get(gateway.polling_url, headers=headers) as reply:
        assert reply.status == 200, (reply.status, await reply.text())
        text = await reply.text()
    assert text.startswith("0"), text
    return str(json.loads(text[1:])["sid"])


async def wait_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = CONNECT_TIMEOUT) -> aiohttp.WSMessage:
    """Read until the server closes the WebSocket; return the close message (raises on timeout)."""
    async def closed() -> aiohttp.WSMessage:
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return message

    return await asyncio.wait_for(closed(), timeout)


async def metric_value(http: aiohttp.ClientSession, gateway: Gateway, series: str) -> float:
    """The value of one exact Prometheus series (name with labels) on the gateway, 0 if absent."""
    async with http.get(f"{gateway.url}/metrics") as reply:
        text = await reply.text()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0
