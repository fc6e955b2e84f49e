"""`python -m stack` (what `make run` runs) as a real process.

It runs on free ports and a throw-away database. The launcher's own behaviour is under
test here: how it supervises, stops and cleans up its children. Everything it starts is
found through the services' /readyz (which reports the answering pid), so a test can
kill one child, or check that all are gone, and clean up whatever is left if it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stack import REPO_ROOT, free_port
from tests.helpers.limits import ADMIN_URL, REDIS_URL, START_TIMEOUT, WAIT
from tests.helpers.stack import create_database, drop_database


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def readyz_pid(url: str) -> int | None:
    """The pid that answers `url`/readyz, or None if nothing does."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return int(json.loads(response.read())["pid"])
    except (OSError, ValueError, KeyError):
        return None


@dataclass
class Launched:
    """A running `python -m stack` and where its services listen."""

    proc: subprocess.Popen[bytes]
    output_path: Path
    log_dir: Path
    lb_url: str
    api_url: str
    gateway_urls: tuple[str, ...]
    env: dict[str, str]
    seen_pids: set[int] = field(default_factory=set)

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def launcher_lines(self) -> list[str]:
        """The launcher's own lines (`[stack] ...`), without the children's echoed output."""
        return [line for line in self.output().splitlines() if line.startswith("[stack]")]

    def service_pids(self) -> dict[str, int | None]:
        """Who answers each service's /readyz now; remembered for the clean-up."""
        urls = {"api": self.api_url}
        urls.update({f"realtime-{i}": url for i, url in enumerate(self.gateway_urls, start=1)})
        pids = {name: readyz_pid(url) for name, url in urls.items()}
        self.seen_pids.update(pid for pid in pids.values() if pid is not None)
        return pids

    def child_named(self, replica: str) -> int | None:
        """The launcher's child whose REPLICA_NAME is `replica` (e.g. realtime-1), if any."""
        for pid in self.child_pids():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if f"REPLICA_NAME={replica}".encode() in environ and pid_alive(pid):
                return pid
        return None

    def child_pids(self) -> set[int]:
        """Every direct child of the launcher (the services and HAProxy)."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except FileNotFoundError:
            return set()
        pids = {int(pid) for pid in text.split()}
        self.seen_pids.update(pids)
        return pids

    async def wait_line(self, text: str, after: int = 0, timeout: float = WAIT) -> int:
        """Wait until the launcher has printed a line containing `text` (counting from
        line `after`); returns the number of launcher lines at that point."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.launcher_lines()
            if any(text in line for line in lines[after:]):
                return len(lines)
            assert self.proc.poll() is None or time.monotonic() < deadline, (
                f"launcher exited with {self.proc.returncode} before printing {text!r}:\n"
                + "\n".join(lines[-20:])
            )
            assert time.monotonic() < deadline, f"no {text!r} from the launcher:\n" + "\n".join(
                lines[-20:]
            )
            await asyncio.sleep(0.1)  # wait-ok: polling another process's output with a deadline

    async def wait_exit(self, timeout: float = 30.0) -> int:
        return await asyncio.to_thread(self.proc.wait, timeout)


async def wait_gone(pids: set[int], timeout: float = WAIT) -> set[int]:
    """Wait until none of `pids` is alive; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while (alive := {pid for pid in pids if pid_alive(pid)}) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # wait-ok: polling /proc with a deadline
    return alive


def accepts(port: int) -> bool:
    """Something listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def wait_ports_closed(ports: list[int], timeout: float = WAIT) -> list[int]:
    """Wait until nothing listens on `ports`; returns those still listening at the deadline."""
    deadline = time.monotonic() + timeout
    while (open_ports := [port for port in ports if accepts(port)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # wait-ok: polling the ports with a deadline
    return open_ports


def spawn_launcher(env: dict[str, str], output_path: Path) -> subprocess.Popen[bytes]:
    """`python -m stack` with its output (and its children's, echoed) in `output_path`."""
    with output_path.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "stack"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def is_stack_child(pid: int) -> bool:
    """True if `pid` is (still) one of our services or HAProxy, not a reused pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return b"services." in cmdline or b"haproxy" in cmdline


@asynccontextmanager
async def launched_stack(
    kind: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Launched]:
    """`python -m stack` on free ports, its own database, channel and log folder."""
    run_id = uuid.uuid4().hex
    db_name = f"chat_launcher_{run_id}"
    log_dir = REPO_ROOT / "test-artifacts" / f"launcher-{kind}-{run_id[:8]}"
    log_dir.mkdir(parents=True, exist_ok=True)
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    lb, api, *gateways = sorted(ports)
    database_url = await create_database(ADMIN_URL, db_name)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "LB_PORT": str(lb),
        "API_PORT": str(api),
        "REALTIME_PORTS": " ".join(map(str, gateways)),
        "STACK_LOG_DIR": str(log_dir),
        "JWT_SECRET": f"launcher-secret-{run_id}",
        "SOCKETIO_CHANNEL": f"chat-launcher-{run_id}",
        "APP_ENV": "development",
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
        "RATE_LIMIT_AUTH_PER_MINUTE": "0",
        **(extra_env or {}),
    }
    output_path = log_dir / "launcher.out"
    proc = spawn_launcher(env, output_path)
    host = "http://127.0.0.1"
    launched = Launched(
        proc,
        output_path,
        log_dir,
        f"{host}:{lb}",
        f"{host}:{api}",
        tuple(f"{host}:{port}" for port in gateways),
        env,
    )
    try:
        await launched.wait_line("all services are ready", timeout=START_TIMEOUT)
        launched.child_pids()
        launched.service_pids()
        yield launched
    finally:
        await _clean_up(launched)
        await drop_database(ADMIN_URL, db_name)


async def _clean_up(launched: Launched) -> None:
    """Stop the launcher if the test left it running, and anything it left behind."""
    if launched.proc.poll() is None:
        launched.child_pids()
        launched.proc.send_signal(signal.SIGTERM)
        try:
            await launched.wait_exit(30)
        except subprocess.TimeoutExpired:
            launched.proc.kill()
            await launched.wait_exit(5)
    for pid in await wait_gone(launched.seen_pids, timeout=5):
        if not is_stack_child(pid):
            continue
        try:
            os.kill(pid, signal.SIGKILL)  # a child of ours that outlived its launcher
        except ProcessLookupError:
            pass
