"""The bench's noisy neighbour: it takes CPU while it runs, and never outlives the bench."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from bench.__main__ import neighbour_duty
from bench.common import CLK_TCK, REPO_ROOT, cpu_user_system_ticks
from bench.neighbour import Neighbour, spin
from tests.helpers.launcher import pid_alive

WAIT_SECONDS = 10.0
# Starts a neighbour that names it as its parent, prints the neighbour's pid and exits
# at once: before the neighbour has even started, which is the case to guard.
ORPHANING_PARENT = """
import os, subprocess, sys
child = subprocess.Popen(
    [sys.executable, "-m", "bench.neighbour", "0.1", str(os.getpid())],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
print(child.pid, flush=True)
"""


def _wait_until(predicate: Callable[[], bool], what: str) -> None:
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
    assert busy > 0.02  # a tenth of its 0.2 s even on a crowded machine
    assert idle < busy / 2


def test_a_duty_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Neighbour(1.5)
    with pytest.raises(ValueError):
        spin(-0.1, seconds=0.0)
    with pytest.raises(argparse.ArgumentTypeError):
        neighbour_duty("2")
    assert neighbour_duty("0.5") == 0.5


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
    # Half a second of CPU: far more than starting the interpreter costs, so only a
    # spinning neighbour gets there.
    try:
        _wait_until(lambda: sum(cpu_user_system_ticks(pid) or (0, 0)) >= CLK_TCK // 2, "CPU used")
    finally:
        neighbour.stop()
    assert not pid_alive(pid)


def test_the_neighbour_exits_when_its_parent_dies() -> None:
    """A bench killed outright, even before its neighbour started, leaves no busy process."""
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
        _wait_until(lambda: not pid_alive(orphan), "the orphaned neighbour to exit")
    finally:
        if pid_alive(orphan):
            os.kill(orphan, 9)
