"""One child process of the local stack: started with its own env, logged, stopped for sure."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """libc's prctl, resolved once in the launcher: the child after fork must not dlopen."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return libc.prctl


_PRCTL = _load_prctl()


def die_with_parent(parent_pid: int) -> None:
    """In the child between fork and exec: be SIGKILLed when the launcher dies.

    Children run in sessions of their own (see ManagedProcess), so nothing else ends
    them when the launcher is SIGKILLed: without this they live on, holding their
    ports, and answer the next launcher's readiness checks. The kernel sends the
    signal when the *thread* that forked the child exits, so children must be started
    from a thread that lives as long as they do (the main thread under `make run`).
    If the launcher died before prctl took effect, the child is an orphan already.
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


class ManagedProcess:
    """A named child whose output goes to `log_path` (and, if `echo`, to our stdout).

    Each child gets its own session so that a Ctrl-C in the terminal reaches only the
    launcher, which then stops the children in a deliberate order instead of all of them
    racing to die at once.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path,
        echo: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.echo = echo
        self._popen: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self.expected_exit = False

    @property
    def pid(self) -> int | None:
        """The OS process id, or None before the first start."""
        return self._popen.pid if self._popen else None

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        """The underlying Popen (for fault tests); raises before start()."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen

    def start(self) -> None:
        """Spawn the child; output is appended to the log so restarts keep earlier runs."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"---- {self.name}: {' '.join(self.argv)}\n".encode())
        log.flush()
        self.expected_exit = False
        launcher = os.getpid()
        self._popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.echo else log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only async-signal-safe work runs in the child: prctl was resolved
            # above, and getppid/kill are plain system calls.
            preexec_fn=lambda: die_with_parent(launcher),  # noqa: PLW1509
        )
        if self.echo:
            self._pump = threading.Thread(
                target=self._copy_output, args=(self._popen.stdout, log), daemon=True
            )
            self._pump.start()
        else:
            log.close()  # the child holds its own copy of the descriptor

    def _copy_output(self, source: IO[bytes] | None, log: IO[bytes]) -> None:
        """Tee the child's output to its log file and to the terminal, prefixed by name."""
        prefix = f"{self.name:<10} | ".encode()
        try:
            if source is None:
                return
            for line in iter(source.readline, b""):
                log.write(line)
                log.flush()
                sys.stdout.buffer.write(prefix + line)
                sys.stdout.buffer.flush()
        finally:
            log.close()

    def is_running(self) -> bool:
        """True while the child has not exited."""
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        """Exit status once exited (negative = killed by that signal), else None."""
        return self._popen.poll() if self._popen else None

    def send_signal(self, sig: int) -> None:
        """Signal the child's whole process group (it may have spawned helpers)."""
        if self._popen is None or self._popen.poll() is not None:
            return
        try:
            os.killpg(self._popen.pid, sig)
        except ProcessLookupError:  # exited between poll() and killpg()
            pass

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout` for a graceful drain, then SIGKILL."""
        if self._popen is None:
            return None
        self.expected_exit = True
        self.send_signal(signal.SIGTERM)
        self.send_signal(signal.SIGCONT)  # a SIGSTOPped child handles SIGTERM only once resumed
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self._popen.wait(5)
        if self._pump is not None:
            self._pump.join(2)
        return self._popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log, to explain a failure without opening files."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of a GET (also for 4xx/5xx), or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def http_get(url: str, timeout: float = 2.0) -> tuple[int | None, bytes]:
    """Status and body of a GET (also for 4xx/5xx); (None, b"") when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def answering_pid(body: bytes) -> int | None:
    """The `pid` a service's /readyz reports, or None if the body names none."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    return pid if isinstance(pid, int) else None


def wait_http_ok(proc: ManagedProcess, url: str, deadline: float, own_pid: bool = False) -> None:
    """Block until `url` answers 200; fail fast if `proc` exits, or at the monotonic deadline.

    With `own_pid`, the 200 counts only if its body's `pid` is `proc`'s: a process
    left over from an earlier run may hold the port and answer for a process of ours
    that is dying on "address already in use".
    """
    last: int | None = None
    while time.monotonic() < deadline:
        if not proc.is_running():
            raise StackStartError(proc, f"exited with {proc.returncode()} before {url} was 200")
        last, body = http_get(url)
        if last == 200:
            if not own_pid:
                return
            pid = answering_pid(body)
            if pid == proc.pid:
                return
            raise StackStartError(
                proc,
                f"{url} was answered by process {pid}, not by ours ({proc.pid}): "
                "another process holds the port",
            )
        time.sleep(0.2)
    raise StackStartError(proc, f"{url} not 200 in time (last status: {last})")


class StackStartError(RuntimeError):
    """A process did not become ready; the message carries the tail of its log."""

    def __init__(self, proc: ManagedProcess, reason: str) -> None:
        self.process_name = proc.name
        self.log_path = proc.log_path
        super().__init__(
            f"{proc.name}: {reason}\n--- last lines of {proc.log_path} ---\n{proc.log_tail()}"
        )
