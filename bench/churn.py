"""Presence churn: a process whose users connect and disconnect at a steady rate.

The `--room-state` load (bench/room_state.py) needs `churn_per_s` connects and as many
disconnects every second, each a presence change. This process holds the churn users
(rooms-aware Engine.IO clients, bench/eioclient.py): every tick it connects the users
due, oldest-waiting first, and each stays connected `hold_seconds` before it closes its
socket; a user that left comes back no sooner than `offline_seconds` later (longer
than the gateways' offline grace, so both its going offline and its coming back are
changes). The churn users are spread over the replicas (user j -> replica j mod N).

Commands over the pipe, like the generators':

    {"cmd": "start"}    start connecting and disconnecting
    {"cmd": "stop"}     stop, and close every churn connection
    {"cmd": "stats"}    -> cumulative counters, connect latencies (array bytes)
    {"cmd": "close"}    close everything and exit
"""

from __future__ import annotations

import asyncio
import os
import time
from array import array
from collections import deque
from typing import Any

from bench.common import pipe_commands
from bench.eioclient import EioClient

TICK_SECONDS = 0.01


class ChurnProcess:
    """What an EioClient asks of the process that holds it, and the churn schedule."""

    event_prefix = b'42["message",'
    room_in_query = False
    deflate = False

    def __init__(
        self,
        targets: list[tuple[str, int]],
        tokens: list[str],
        rate: float,
        hold_seconds: float,
        offline_seconds: float,
        timeout: float = 30.0,
    ) -> None:
        self.targets = targets
        self.tokens = tokens
        self.rate = rate
        self.hold = hold_seconds
        self.away = offline_seconds
        self.timeout = timeout
        self.room_ids: list[str] = []
        self.deflate_accepted = 0
        self.measuring = False
        self.disconnects = 0  # unexpected ones are not told apart here
        self.waiting: deque[tuple[float, int]] = deque((0.0, j) for j in range(len(tokens)))
        self.online: deque[tuple[float, int, EioClient]] = deque()
        self.pending: set[asyncio.Task[None]] = set()
        self.running = False
        self.connects = 0
        self.failed = 0
        self.closed = 0
        self.starved = 0  # connects due while no user was back yet
        self.events: dict[str, int] = {}
        self.connect_ms = array("d")

    def auth(self, token: str) -> dict[str, Any]:
        return {"token": token, "rooms": True}

    def on_message(self, index: int, payload: bytes, now: float) -> None:
        self.events["message"] = self.events.get("message", 0) + 1

    def on_event(self, name: bytes) -> None:
        key = name.decode(errors="replace")
        self.events[key] = self.events.get(key, 0) + 1

    async def connect(self, j: int) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.targets[j % len(self.targets)]
        started = time.monotonic()
        reason = ""
        client: EioClient | None = None
        try:
            _, client = await asyncio.wait_for(
                loop.create_connection(
                    lambda: EioClient(self, j, self.tokens[j], host, port),  # type: ignore[arg-type]
                    host,
                    port,
                ),
                self.timeout,
            )
            reason = await asyncio.wait_for(asyncio.shield(client.connected), self.timeout)
        except (OSError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if reason or client is None:
            self.failed += 1
            if client is not None:
                client._close()
            self.waiting.append((now + self.away, j))
            return
        self.connects += 1
        self.connect_ms.append((now - started) * 1000.0)
        if self.running:
            self.online.append((now + self.hold, j, client))
        else:
            client._close()
            self.waiting.append((now + self.away, j))

    async def run(self) -> None:
        """Connect the users due at `rate`, close those whose hold is over, every tick."""
        started = time.monotonic()
        due_done = 0
        while self.running:
            now = time.monotonic()
            while self.online and self.online[0][0] <= now:
                _, j, client = self.online.popleft()
                client._close()
                self.closed += 1
                self.waiting.append((now + self.away, j))
            due = int((now - started) * self.rate) - due_done
            for _ in range(due):
                due_done += 1
                if not self.waiting or self.waiting[0][0] > now:
                    self.starved += 1
                    continue
                _, j = self.waiting.popleft()
                task = asyncio.create_task(self.connect(j))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
            await asyncio.sleep(TICK_SECONDS)

    async def stop(self) -> None:
        self.running = False
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        now = time.monotonic()
        while self.online:
            _, j, client = self.online.popleft()
            client._close()
            self.closed += 1
            self.waiting.append((now + self.away, j))

    def stats(self) -> dict[str, Any]:
        return {
            "connects": self.connects,
            "failed": self.failed,
            "disconnects": self.closed,
            "starved": self.starved,
            "online": len(self.online),
            "events": dict(self.events),
            "connect_ms": self.connect_ms.tobytes(),
        }


async def _serve(conn: Any, proc: ChurnProcess) -> None:
    conn.send({"pid": os.getpid()})
    commands = pipe_commands(conn)
    runner: asyncio.Task[None] | None = None
    while True:
        command = await commands.get()
        kind = command["cmd"]
        if kind == "start":
            proc.running = True
            runner = asyncio.create_task(proc.run())
            conn.send({"ok": True})
        elif kind == "stop":
            await proc.stop()
            if runner is not None:
                await runner
            conn.send({"ok": True})
        elif kind == "stats":
            conn.send(proc.stats())
        elif kind == "close":
            await proc.stop()
            await asyncio.sleep(0.2)
            conn.send({"closed": True})
            return


def churn_main(
    conn: Any,
    targets: list[tuple[str, int]],
    tokens: list[str],
    rate: float,
    hold_seconds: float,
    offline_seconds: float,
) -> None:
    """Entry point of the churn process (multiprocessing, spawn)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    runner(_serve(conn, ChurnProcess(targets, tokens, rate, hold_seconds, offline_seconds)))


class Churn:
    """The orchestrator's side: start the churn process and send it commands."""

    def __init__(
        self,
        targets: list[tuple[str, int]],
        tokens: list[str],
        rate: float,
        hold_seconds: float,
        offline_seconds: float,
    ) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=churn_main,
            daemon=True,
            args=(child, targets, tokens, rate, hold_seconds, offline_seconds),
        )
        self.proc.start()
        if not self.conn.poll(60):
            raise SystemExit("the churn process did not start")
        self.pid: int = self.conn.recv()["pid"]

    def ask(self, command: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        self.conn.send(command)
        if not self.conn.poll(timeout):
            raise SystemExit(f"the churn process did not answer {command['cmd']}")
        reply: dict[str, Any] = self.conn.recv()
        return reply

    def close(self) -> None:
        try:
            self.ask({"cmd": "close"}, timeout=30)
        except (SystemExit, OSError, EOFError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(2)
