"""A noisy neighbour: a process that keeps part of one core busy while a bench runs.

The same code measures very differently on a machine whose other tenants are busy: the
CPU a delivery costs, and above all the tail of the latency, which grows as the machine
nears its capacity. `--neighbour DUTY` (`python -m bench --help`) runs this process
beside the load so that such an hour can be reproduced on purpose, and a result can
say how much room it needs. It spins for `DUTY` of every `PERIOD_SECONDS` of wall time
and sleeps the rest: about `DUTY` of one core on an idle machine, less on a loaded one
(it competes for the cores like any process; 0.5 took 37 % beside the room-state load).
Its CPU shows in each window's `other_processes_cpu_pct`.

Run alone: `python -m bench.neighbour 0.5` (until killed, or until the process whose
pid is the optional second argument is gone).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.common import REPO_ROOT

# Short enough that the busy share is steady at the scale of a delivery's latency.
PERIOD_SECONDS = 0.01


def check_duty(duty: float) -> float:
    """`duty` if it is a share of one core (0 to 1), else ValueError."""
    if not 0.0 <= duty <= 1.0:
        raise ValueError(f"the neighbour's duty must be between 0 and 1, not {duty}")
    return duty


def spin(
    duty: float,
    period: float = PERIOD_SECONDS,
    seconds: float | None = None,
    parent: int | None = None,
) -> None:
    """Busy for `duty` of every `period`, asleep for the rest.

    It stops after `seconds` if given, and as soon as `parent` (a pid) is no longer its
    parent process: a bench killed outright must not leave a core busy behind it. The
    parent's pid comes from the bench itself, so a bench that dies before this process
    has started is noticed too.
    """
    check_duty(duty)
    end = None if seconds is None else time.perf_counter() + seconds
    while parent is None or os.getppid() == parent:
        start = time.perf_counter()
        if end is not None and start >= end:
            return
        while time.perf_counter() - start < period * duty:
            pass
        if duty < 1.0:
            time.sleep(period * (1.0 - duty))


class Neighbour:
    """The neighbour process while a run lasts: `start()` and `stop()` (no-ops at duty 0)."""

    def __init__(self, duty: float) -> None:
        self.duty = check_duty(duty)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.duty <= 0 or self._process is not None:
            return
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.neighbour", str(self.duty), str(os.getpid())],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    try:
        spin(float(sys.argv[1]), parent=int(sys.argv[2]) if len(sys.argv) > 2 else None)
    except KeyboardInterrupt:
        pass
