"""The launcher behind `make run`: children die with it, ports and readiness are its own,
a crashed process is restarted while the rest serve, and the stop is quick and orderly.

Every test drives real processes: `python -m stack` itself, or a LocalStack.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import aiohttp
import pytest

from services.api_service.db.migrate import available_migrations
from stack import REPO_ROOT, LocalStack, ManagedProcess, StackConfig, StackStartError, free_port
from stack.infra import PortInUseError
from stack.supervise import CrashLoop, CrashPolicy, Supervisor
from tests.helpers.delivery import Writer
from tests.helpers.launcher import Launched, launched_stack, pid_alive, wait_gone, wait_ports_closed
from tests.helpers.limits import ADMIN_URL, REDIS_URL, WAIT
from tests.helpers.rest import Api, sign_up_and_in
from tests.helpers.sockets import ChatSocket, SocketFactory, wait_gateway_holding

pytestmark = pytest.mark.timeout(180)

Report = Callable[[str, str], None]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


def no_traceback(launched: Launched) -> None:
    """The launcher's own output has no Python traceback (the children's is not ours)."""
    own = [line for line in launched.output().splitlines() if "|" not in line[:13]]
    assert not any("Traceback" in line for line in own), "\n".join(own[-30:])


# ---- 17: orphans, ports in use, readiness --------------------------------------------------


async def test_children_die_with_a_killed_launcher() -> None:
    """SIGKILL the launcher: its children go too, and their ports are free for the next run."""
    async with launched_stack("orphans") as launched:
        children = launched.child_pids()
        assert len(children) == 4, children  # api, two gateways, haproxy
        launched.proc.send_signal(signal.SIGKILL)
        await launched.wait_exit()
        left = await wait_gone(children)
        assert not left, f"children outlived their launcher: {left}"
        urls = (launched.lb_url, launched.api_url, *launched.gateway_urls)
        still_open = await wait_ports_closed([int(url.rsplit(":", 1)[1]) for url in urls])
        assert not still_open, f"ports still accepting after the launcher died: {still_open}"


async def test_make_run_migrates_once_before_the_api_starts() -> None:
    """The launcher applies the migrations; the API it then starts does not run them again."""
    async with launched_stack("migrate-once") as launched:
        api_pid = launched.child_named("api")
        assert api_pid is not None
        environ = Path(f"/proc/{api_pid}/environ").read_bytes().split(b"\0")
        assert b"MIGRATE_ON_START=false" in environ, "the API was started to migrate again"
        log = (Path(launched.log_dir) / "migrate.log").read_text()
        applied = [line for line in log.splitlines() if "applied migration" in line]
        assert len(applied) == len(available_migrations()), log


@contextmanager
def listening(port: int) -> Iterator[socket.socket]:
    """Something else listening on 127.0.0.1:`port` (as an orphan of an earlier run would)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock


def test_a_port_in_use_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    config = StackConfig.ephemeral(
        "postgresql://postgres@127.0.0.1:5432/never_created",
        REDIS_URL,
        log_dir=tmp_path,
        ensure_infra=False,
    )
    stack = LocalStack(config)
    with listening(config.realtime_ports[1]), pytest.raises(PortInUseError) as refused:
        stack.start()
    message = str(refused.value)
    assert f"{config.realtime_ports[1]} (gateway 2)" in message, message
    assert "already in use" in message
    assert all(proc.pid is None for proc in stack.processes), "a process was started"
    assert not list(tmp_path.iterdir()), "migrations or services ran"


async def test_make_run_says_which_port_is_in_use(tmp_path: Path) -> None:
    from tests.helpers.launcher import spawn_launcher

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        others = [free_port() for _ in range(3)]
        env = {
            # Servers nobody listens on: nothing may be created or started anywhere.
            **os.environ,
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "API_PORT": str(port),
            "LB_PORT": str(others[0]),
            "REALTIME_PORTS": f"{others[1]} {others[2]}",
            "STACK_LOG_DIR": str(tmp_path),
        }
        proc = spawn_launcher(env, tmp_path / "out")
        code = await asyncio.to_thread(proc.wait, 30)
    finally:
        busy.close()
    output = (tmp_path / "out").read_text()
    assert code == 1, output
    assert f"{port} (api)" in output and "already in use" in output, output
    assert "Traceback" not in output, output


class _Impostor(BaseHTTPRequestHandler):
    """Answers every GET as a ready service would, from a process that is not ours."""

    def do_GET(self) -> None:
        body = b'{"status":"ready","redis":"ok","pid":1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A LocalStack (started in this thread, which outlives it) on a throw-away database."""
    import uuid

    from stack import infra

    name = f"chat_launcher_{uuid.uuid4().hex}"
    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    infra.ensure_database(database_url)
    stack = LocalStack(
        StackConfig.ephemeral(
            database_url,
            REDIS_URL,
            log_dir=tmp_path,
            ensure_infra=False,
            extra_env={
                "JWT_SECRET": f"s-{name}",
                "SOCKETIO_CHANNEL": name,
                "APP_ENV": "development",
            },
        )
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        infra.drop_database(database_url)


def test_readiness_is_answered_by_the_process_that_was_started(local_stack: LocalStack) -> None:
    """A restarted gateway that dies on a taken port is not reported ready by whoever holds it."""
    port = local_stack.config.realtime_ports[0]
    local_stack.kill_gateway(0)
    impostor = ThreadingHTTPServer(("127.0.0.1", port), _Impostor)
    server = Thread(target=impostor.serve_forever, daemon=True)
    server.start()
    try:
        with pytest.raises(StackStartError) as refused:
            local_stack.restart_gateway(0, timeout=20)
        assert "realtime-1" in str(refused.value)
        # The port was never ours: the gateway we started dies on it.
        assert local_stack.gateways[0].popen.wait(20) != 0
    finally:
        impostor.shutdown()
        impostor.server_close()


# ---- 16: supervision -----------------------------------------------------------------------


@pytest.mark.security
async def test_a_killed_gateway_is_restarted_and_its_reader_loses_nothing(
    http: aiohttp.ClientSession, attack_report: Report
) -> None:
    async with launched_stack("supervise") as launched:
        api = Api(http, launched.api_url)
        reader_user, writer_user = await sign_up_and_in(api), await sign_up_and_in(api)
        reader = ChatSocket("reader", launched.lb_url, reader_user, api)
        writer = Writer(api, writer_user, rate=20)
        try:
            await reader.connect()
            gateways = [_Log(Path(launched.log_dir) / f"realtime-{i}.log") for i in (1, 2)]
            victim = await wait_gateway_holding(gateways, reader.sio.get_sid())
            victim_pid = launched.child_named(f"realtime-{victim + 1}")
            assert victim_pid is not None
            writer.start()
            await writer.wait_acks(20)
            lines = len(launched.launcher_lines())

            _kill(victim_pid)
            await launched.wait_line(f"realtime-{victim + 1} restarted", after=lines)
            await reader.wait_connected(connects=2)
            await writer.wait_acks(len(writer.acknowledged) + 40)
            new_pid = await _new_pid(launched, victim + 1, victim_pid)
            await writer.stop()
            await reader.wait_ids(writer.ids())

            attack_report(
                "gateway SIGKILLed under make run",
                f"restarted (pid {victim_pid} -> {new_pid}); posts acknowledged "
                f"{len(writer.acknowledged)}, failed {writer.failures}; reader lost "
                f"{len(reader.lost(writer.ids()))}, reconnects {reader.connects - 1}",
            )
            assert launched.proc.poll() is None, "the launcher stopped"
            assert writer.failures == 0, "posts failed while a gateway was down"
            assert not reader.lost(writer.ids())
        finally:
            await writer.stop()
            await reader.close()
        no_traceback(launched)


class _Log:
    """What wait_gateway_holding needs of a gateway: its log file."""

    def __init__(self, path: Path) -> None:
        self.log_path = path


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


async def _new_pid(launched: Launched, n: int, old: int) -> int:
    deadline = time.monotonic() + WAIT
    while True:
        pid = launched.child_named(f"realtime-{n}")
        if pid is not None and pid != old:
            return pid
        assert time.monotonic() < deadline, "the gateway did not come back"
        await asyncio.sleep(0.1)  # wait-ok: polling /readyz with a deadline


def test_a_crash_loop_stops_the_supervision(tmp_path: Path) -> None:
    crasher = ManagedProcess(
        "crasher",
        [sys.executable, "-c", "raise SystemExit(3)"],
        {},
        tmp_path / "crasher.log",
        REPO_ROOT,
    )
    said: list[str] = []
    supervisor = Supervisor(
        (crasher,), said.append, CrashPolicy(max_crashes=3, window=60, first_delay=0.05)
    )
    crasher.start()
    deadline = time.monotonic() + WAIT
    with pytest.raises(CrashLoop) as gave_up:
        while time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.02)  # wait-ok: the supervisor's own polling pace
    assert gave_up.value.process is crasher
    assert supervisor.restarts == 2
    restarting = [line for line in said if "restarting it in" in line]
    assert [line.split(" (")[0] for line in restarting] == ["crasher exited with 3"] * 2
    assert "crash loop" in said[-1]


def test_back_off_doubles_and_forgets_old_crashes() -> None:
    policy = CrashPolicy(max_crashes=5, window=60, first_delay=0.5, max_delay=4)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, None]
    from collections import deque

    crashes = deque([0.0, 20.0, 70.5])
    assert policy.recent(crashes, now=71.0) == 2


# ---- 18: the stop ------------------------------------------------------------------------


@pytest.mark.security
async def test_the_stack_stops_quickly_whatever_the_clients_did(
    http: aiohttp.ClientSession, attack_report: Report
) -> None:
    async with launched_stack("stop") as launched:
        api = Api(http, launched.api_url)
        sockets = SocketFactory(launched.lb_url)
        try:
            users = [await sign_up_and_in(api) for _ in range(4)]
            left = [
                await sockets.connect(users[0].token, transports=["polling"]),
                await sockets.connect(users[1].token, transports=["websocket"]),
            ]
            await sockets.connect(users[2].token, transports=["polling"])
            await sockets.connect(users[3].token, transports=["websocket"])
            for sock in left:
                await sock.close()
            # A client that opened a session and never came back.
            async with http.get(f"{launched.lb_url}/socket.io/?EIO=4&transport=polling") as opened:
                assert opened.status == 200
            children = launched.child_pids()

            started = time.monotonic()
            launched.proc.send_signal(signal.SIGTERM)
            code = await launched.wait_exit(30)
            took = time.monotonic() - started
        finally:
            await asyncio.wait_for(sockets.close_all(), 15)
        attack_report(
            "stack stop",
            f"{took:.1f} s (2 gateways; clients: 2 left, 2 connected, 1 abandoned session)",
        )
        assert code == 0, launched.output()[-2000:]
        assert took < 15
        assert not await wait_gone(children, timeout=5)
        no_traceback(launched)


async def test_repeated_signals_give_an_orderly_stop() -> None:
    async with launched_stack("double-term") as launched:
        children = launched.child_pids()
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            launched.proc.send_signal(sig)
        code = await launched.wait_exit(30)
        assert code == 0, launched.output()[-2000:]
        assert not await wait_gone(children, timeout=5)
        assert any("stopped in" in line for line in launched.launcher_lines())
        no_traceback(launched)
        assert not any(pid_alive(pid) for pid in children)
