"""Keep the local stack serving when one of its processes crashes: `make run`'s supervisor.

Like Compose's `restart: unless-stopped`: a process that exits without being asked to
is started again, after a back-off that doubles with each recent crash, while every
other process keeps serving (a dead gateway's clients reconnect through the load
balancer to the other one, and come back with `lastId`). Only a crash loop, a process
that keeps dying, stops the stack, because restarting it forever would hide the fault.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from stack.process import ManagedProcess

Say = Callable[[str], None]


@dataclass
class CrashPolicy:
    """When to restart a crashed process, and when to give up on it.

    `max_crashes` crashes within `window` seconds is a crash loop. The n-th crash in
    the window waits `first_delay * 2**(n-1)` seconds (at most `max_delay`) before the
    restart, so a process failing on a dependency that is briefly down gets time for
    it to come back without the log filling up.
    """

    max_crashes: int = 5
    window: float = 60.0
    first_delay: float = 0.5
    max_delay: float = 8.0

    def recent(self, crashes: deque[float], now: float) -> int:
        """How many of `crashes` (monotonic times) fall within the window before `now`."""
        while crashes and crashes[0] <= now - self.window:
            crashes.popleft()
        return len(crashes)

    def delay(self, recent_crashes: int) -> float | None:
        """Seconds to wait before restarting after the n-th recent crash; None: give up."""
        if recent_crashes >= self.max_crashes:
            return None
        return min(self.max_delay, self.first_delay * 2.0 ** max(0, recent_crashes - 1))


class CrashLoop(RuntimeError):
    """A process crashed too often in too short a time: the stack cannot serve."""

    def __init__(self, proc: ManagedProcess, message: str) -> None:
        super().__init__(message)
        self.process = proc


@dataclass
class _Pending:
    proc: ManagedProcess
    at: float  # monotonic time of the restart


@dataclass
class Supervisor:
    """Restarts crashed processes of a stack; call `check()` regularly from the main thread.

    The main thread, because children are tied to the thread that started them (they
    die with it, see `process.die_with_parent`).
    """

    processes: tuple[ManagedProcess, ...]
    say: Say
    policy: CrashPolicy = field(default_factory=CrashPolicy)
    clock: Callable[[], float] = time.monotonic
    restarts: int = 0
    _crashes: dict[str, deque[float]] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def check(self) -> None:
        """Notice new crashes and run the restarts that are due; raise CrashLoop to give up."""
        now = self.clock()
        for proc in self.processes:
            if proc.name in self._pending:
                continue
            if proc.pid is not None and not proc.is_running() and not proc.expected_exit:
                self._crashed(proc, now)
        for name, pending in list(self._pending.items()):
            if pending.at <= now:
                del self._pending[name]
                self._restart(pending.proc)

    def _crashed(self, proc: ManagedProcess, now: float) -> None:
        crashes = self._crashes.setdefault(proc.name, deque())
        crashes.append(now)
        recent = self.policy.recent(crashes, now)
        delay = self.policy.delay(recent)
        status = proc.returncode()
        if delay is None:
            self.say(
                f"{proc.name} exited with {status}, {recent} crashes in "
                f"{self.policy.window:.0f} s: a crash loop, giving up"
            )
            raise CrashLoop(
                proc, f"{proc.name} crashed {recent} times in {self.policy.window:.0f} s"
            )
        self.say(
            f"{proc.name} exited with {status} (crash {recent} in the last "
            f"{self.policy.window:.0f} s); restarting it in {delay:g} s, the rest keep serving"
        )
        self._pending[proc.name] = _Pending(proc, now + delay)

    def _restart(self, proc: ManagedProcess) -> None:
        proc.start()
        self.restarts += 1
        self.say(f"{proc.name} restarted (pid {proc.pid})")
