"""A noisy neighbour: a process that keeps part of one core busy while a bench runs.

The same code measures very differently on a machine whose other tenants are busy: the
CPU a delivery costs, and above all the tail of the latency, which grows as the machine
nears its capacity. `--neighbour DUTY` (`python -m bench --help`) runs this process
beside the load so that such an hour can be reproduced on purpose, and a result can
say how much room it needs: it spins for `DUTY` of every `PERIOD_SECONDS` and sleeps
the rest, so it takes about `DUTY` of one core (0.5: half a core) for as long as the
bench runs. Its CPU shows in each window's `other_processes_cpu_pct`.

Run alone: `python -m bench.neighbour 0.5` (until killed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.common import REPO_ROOT

# Short enough that the busy share is steady at the scale of a delivery's latency.
PERIOD_SECONDS = 0.01


def spin(duty: float, period: float = PERIOD_SECONDS, seconds: float | None = None) -> None:
    """Busy for `duty` of every `period`, asleep for the rest.

    Until `seconds` have passed, or else until the parent process is gone: a bench
    killed outright must not leave a core busy behind it.
    """
    if not 0.0 <= duty <= 1.0:
        raise ValueError(f"duty must be between 0 and 1, not {duty}")
    parent = os.getppid()
    end = None if seconds is None else time.perf_counter() + seconds
    while (time.perf_counter() < end) if end is not None else os.getppid() == parent:
        start = time.perf_counter()
        while time.perf_counter() - start < period * duty:
            pass
        if duty < 1.0:
            time.sleep(period * (1.0 - duty))


class Neighbour:
    """The neighbour process while a run lasts: `start()` and `stop()` (no-ops at duty 0)."""

    def __init__(self, duty: float) -> None:
        if not 0.0 <= duty <= 1.0:
            raise SystemExit(f"--neighbour must be between 0 and 1 (of one core), not {duty}")
        self.duty = duty
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.duty <= 0 or self._process is not None:
            return
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.neighbour", str(self.duty)], cwd=REPO_ROOT
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
        spin(float(sys.argv[1]))
    except KeyboardInterrupt:
        pass
