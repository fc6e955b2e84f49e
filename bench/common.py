"""Small shared pieces: /proc sampling, percentiles, the bench message, limits, logging."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
TEXT = "Benchmark message: the quick brown fox jumps over the lazy dog, 0123456789."
DEFAULT_MAX_CLIENTS = 5_000
# Other processes above this share of one core during a window: the machine was shared.
SHARED_MACHINE_PCT = 25.0
HARD_MAX_CLIENTS = 10_000


def say(text: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON result lines."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def user_id(index: int) -> str:
    """The user id of the bench's client `index` (its token's `sub`)."""
    return str(uuid.UUID(int=index + 1))


def make_message(seq: int, ts: float) -> dict[str, Any]:
    """The message every target delivers: the chat wire shape plus `ts` (publish time)."""
    return {
        "_id": str(seq),
        "id": str(uuid.UUID(int=seq)),
        "owner": "00000000-0000-0000-0000-00000000beef",
        "userName": "bench",
        "text": TEXT,
        "createdAt": datetime.fromtimestamp(ts, UTC).isoformat(),
        "ts": ts,
    }


@dataclass
class CpuSample:
    ticks: int
    at: float


def cpu_user_system_ticks(pid: int) -> tuple[int, int] | None:
    """utime and stime of `pid` in clock ticks (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of `pid` in clock ticks (None when it is gone)."""
    ticks = cpu_user_system_ticks(pid)
    return None if ticks is None else sum(ticks)


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return None


def machine_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine, all cores (from /proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values[:8]) - values[3] - values[4]  # minus idle and iowait


class CpuMeter:
    """CPU seconds used by a set of processes between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, CpuSample] = {}
        self.seconds: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        now = time.monotonic()
        self._start = {name: CpuSample(cpu_ticks(pid) or 0, now) for name, pid in self.pids.items()}
        self._machine = machine_busy_ticks()

    def stop(self) -> None:
        now = time.monotonic()
        for name, pid in self.pids.items():
            ticks = cpu_ticks(pid)
            begin = self._start[name]
            self.seconds[name] = ((ticks or begin.ticks) - begin.ticks) / CLK_TCK
            self.wall = now - begin.at
        self.machine_seconds = (machine_busy_ticks() - self._machine) / CLK_TCK

    def others_pct(self) -> float:
        """CPU% (of one core) used during the window by processes not measured here."""
        if not self.wall:
            return 0.0
        return round(100.0 * (self.machine_seconds - sum(self.seconds.values())) / self.wall, 1)

    def machine_pct(self) -> float:
        return round(100.0 * self.machine_seconds / self.wall, 1) if self.wall else 0.0

    def pct(self, name: str) -> float:
        return round(100.0 * self.seconds[name] / self.wall, 1) if self.wall else 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[rank]


def latency_summary(values_s: list[float]) -> dict[str, float]:
    values = sorted(values_s)
    ms = lambda v: round(v * 1000.0, 2)
    return {
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1]) if values else 0.0,
        "samples": len(values),
    }


def raise_nofile(need: int) -> int:
    """Raise RLIMIT_NOFILE toward `need` (soft up to hard); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def check_clients(clients: int, allow_10k: bool, extra: int = 0) -> None:
    """Refuse more clients than the cap; raise `ulimit -n` for them and `extra` sockets
    (the churn users of a room-state run, which come on top of the cap)."""
    cap = HARD_MAX_CLIENTS if allow_10k else DEFAULT_MAX_CLIENTS
    if clients > cap:
        hint = "" if allow_10k else " (pass --allow-10k to go up to 10,000)"
        raise SystemExit(f"--clients {clients} is above the cap of {cap}{hint}")
    # Each client is one socket in a generator process and one in a server; keep headroom.
    soft = raise_nofile(clients + extra + 1024)
    if soft < clients + extra + 256:
        raise SystemExit(f"ulimit -n is {soft}: too low for {clients + extra} clients (raise it)")


def wait_for_quiet(
    max_wait: float, threshold_pct: float = SHARED_MACHINE_PCT, sustain: int = 3
) -> float:
    """Wait (up to `max_wait` s) until the machine is nearly idle; returns the last busy %.

    Other work on the same 2 cores (a test suite, a build) skews every number, so a run
    starts when the rest of the machine has used less than `threshold_pct` of one core
    for `sustain` seconds in a row (one quiet second is often a pause between two tests).
    """
    deadline = time.monotonic() + max_wait
    quiet = 0
    while True:
        before = machine_busy_ticks()
        time.sleep(1.0)
        busy = 100.0 * (machine_busy_ticks() - before) / CLK_TCK
        quiet = quiet + 1 if busy < threshold_pct else 0
        if quiet >= sustain or time.monotonic() >= deadline:
            if busy >= threshold_pct:
                say(
                    f"WARNING: machine still {busy:.0f}% busy (of one core) after waiting "
                    f"{max_wait:.0f}s"
                )
            return busy
        if not quiet:
            say(f"machine {busy:.0f}% busy with other work; waiting for it to calm down")
            time.sleep(2.0)


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def results_file() -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return RESULTS_DIR / f"{datetime.now(UTC).strftime('%Y-%m-%d')}.jsonl"


def pipe_commands(conn: Any) -> asyncio.Queue[dict[str, Any]]:
    """The commands the orchestrator sends down a worker process's pipe, as a queue.

    A `{"cmd": "close"}` stands for the pipe closing. Replies are sent blocking (the
    loop makes the pipe non-blocking to read it; a result can be megabytes).
    """
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def readable() -> None:
        while conn.poll():
            try:
                commands.put_nowait(conn.recv())
            except EOFError:
                commands.put_nowait({"cmd": "close"})
                loop.remove_reader(conn.fileno())
                return

    loop.add_reader(conn.fileno(), readable)
    os.set_blocking(conn.fileno(), True)
    return commands


def redis_and_save_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every measurement of its own (`upkeep`, `connects`) ends with."""
    from services.shared import defaults

    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", defaults.REDIS_URL))
    parser.add_argument("--no-save", action="store_true")
    return parser
