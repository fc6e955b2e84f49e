"""Processes a test starts besides the stack: one more API or gateway, private Redis/PostgreSQL.

The private servers live on free ports so that faults (a restart, a `CLIENT KILL`) never
touch the machine's shared 6379/5432. Nothing sleeps to "let things settle": waits are on
events with a timeout, and the polling lines say `# wait-ok`.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import aiohttp

from stack import REPO_ROOT, free_port
from stack.process import ManagedProcess, wait_http_ok
from tests.helpers.stack import ChatStack, require_local


@dataclass(frozen=True)
class ServiceProcess:
    """One more API or gateway process: where it answers, its pid (for its memory), its log."""

    url: str
    pid: int
    log_path: Path

    def rss_bytes(self) -> int:
        """Resident memory of the process (VmRSS in /proc/<pid>/status)."""
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


Gateway = ServiceProcess  # what the gateway attack tests call it


@asynccontextmanager
async def service_process(
    chat_stack: ChatStack, module: str, env: dict[str, str], name: str
) -> AsyncIterator[ServiceProcess]:
    """One more `module` process on the stack's database and Redis, `env` on top of its settings."""
    require_local(chat_stack)
    port = free_port()
    assert chat_stack.log_dir is not None
    log_path = Path(chat_stack.log_dir) / f"{name}.log"
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", module],
        {**os.environ, **chat_stack.service_env, "PORT": str(port), **env},
        log_path,
        REPO_ROOT,
    )
    proc.start()
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_http_ok, proc, f"{url}/readyz", time.monotonic() + 30)
        assert proc.pid is not None
        yield ServiceProcess(url, proc.pid, log_path)
    finally:
        await asyncio.to_thread(proc.stop)


@asynccontextmanager
async def extra_process(
    chat_stack: ChatStack, module: str, env: dict[str, str], name: str
) -> AsyncIterator[str]:
    """One more API or gateway process on the stack's database and Redis; yields its URL."""
    async with service_process(chat_stack, module, env, name) as process:
        yield process.url


@asynccontextmanager
async def gateway_process(
    chat_stack: ChatStack, name: str, env: dict[str, str]
) -> AsyncIterator[ServiceProcess]:
    """One more gateway on the stack's Redis with `env` on top of the stack's settings."""
    async with service_process(chat_stack, "services.realtime_service", env, name) as gateway:
        yield gateway


async def polling_handshake(
    http: aiohttp.ClientSession, gateway: ServiceProcess, **headers: str
) -> str:
    """Open a long-polling Engine.IO session; return its sid."""
    async with http.get(gateway.polling_url, headers=headers) as reply:
        assert reply.status == 200, (reply.status, await reply.text())
        text = await reply.text()
    assert text.startswith("0"), text
    return str(json.loads(text[1:])["sid"])


# ---- private servers ----------------------------------------------------------------------


def _port_open(port: int) -> bool:
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
