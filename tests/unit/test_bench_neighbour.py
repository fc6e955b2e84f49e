"""The bench's noisy neighbour: it takes CPU while it runs, and never outlives the bench."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.common import REPO_ROOT, cpu_user_system_ticks
from bench.neighbour import Neighbour, spin

WAIT_SECONDS = 10.0
# Starts a neighbour, prints its pid and exits without stopping it.
ORPHANING_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "bench.neighbour", "0.1"])
print(child.pid, flush=True)
time.sleep(0.3)  # wait-ok: the child is spinning before its parent goes
"""


def _alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # wait-ok: polling /proc for a state change, bounded above


def test_spin_keeps_the_cpu_busy_for_its_share() -> None:
    started = time.process_time()
    spin(1.0, seconds=0.2)
    busy = time.process_time() - started
    started = time.process_time()
    spin(0.0, seconds=0.2)
    idle = time.process_time() - started
    assert busy > 0.02  # a fifth of its 0.2 s even on a crowded machine
    assert idle < busy / 2


def test_a_duty_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(SystemExit):
        Neighbour(1.5)
    with pytest.raises(ValueError):
        spin(-0.1, seconds=0.0)


def test_no_neighbour_at_duty_zero() -> None:
    neighbour = Neighbour(0.0)
    neighbour.start()
    assert neighbour.pid is None
    neighbour.stop()


def test_the_neighbour_uses_cpu_until_stopped() -> None:
    neighbour = Neighbour(0.5)
    neighbour.start()
    pid = neighbour.pid
    assert pid is not None
    try:
        _wait_until(lambda: sum(cpu_user_system_ticks(pid) or (0, 0)) > 5, "CPU used")
    finally:
        neighbour.stop()
    assert not _alive(pid)


def test_the_neighbour_exits_when_its_parent_dies() -> None:
    """A bench killed outright leaves no busy process behind."""
    parent = subprocess.run(
        [sys.executable, "-c", ORPHANING_PARENT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=True,
    )
    orphan = int(parent.stdout.strip())
    try:
        _wait_until(lambda: not _alive(orphan), "the orphaned neighbour to exit")
    finally:
        if _alive(orphan):
            os.kill(orphan, 9)
