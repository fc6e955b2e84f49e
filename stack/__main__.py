"""`python -m stack [run|install|infra|createdb]`, the command line behind the Makefile.

run       (default; `make run`) start everything, print the URLs, stop on Ctrl-C.
          A process that dies on its own is restarted (with back-off) while the
          others keep serving; a crash loop (5 crashes of one process in 60 s) stops
          everything. Exits 0 after Ctrl-C / SIGTERM (repeated ones are ignored while
          stopping), 1 if the stack failed to start or gave up on a crash loop.
install   (`scripts/bootstrap.sh`) install the missing system packages (apt-get, as
          root; with --browser also Chromium), start the local PostgreSQL and Redis,
          install the npm packages. Stdlib only: it runs before .venv exists.
infra     make sure PostgreSQL (with the database) and Redis are up, then exit.
createdb  create the database named in DATABASE_URL if missing (`make migrate`).
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

from stack import infra
from stack.local import REPO_ROOT, LocalStack, StackConfig
from stack.process import StackStartError
from stack.supervise import CrashLoop, Supervisor


class _Terminated(Exception):
    """Raised in the main thread by the first SIGTERM or SIGINT so it unwinds to the stop."""


_stopping = False


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """The first SIGTERM/SIGINT starts the stop; later ones are ignored, never raised.

    Raising on every signal would let a second one (a repeated Ctrl-C, a supervisor
    sending SIGTERM twice) interrupt the stop itself, leaving children half-stopped
    and a traceback instead of an orderly stop.
    """
    global _stopping
    if _stopping:
        return
    _stopping = True
    raise _Terminated


def _say(text: str) -> None:
    print(f"[stack] {text}", flush=True)


def _print_urls(stack: LocalStack) -> None:
    width = max(len(label) for label in stack.urls())
    _say("all services are ready:")
    for label, url in stack.urls().items():
        print(f"    {label:<{width}}  {url}", flush=True)
    _say("press Ctrl-C to stop")


def _supervise(stack: LocalStack) -> int:
    """Restart crashed children until interrupted (the exception escapes) or a crash loop (1)."""
    supervisor = Supervisor(stack.processes, _say)
    while True:
        try:
            supervisor.check()
        except CrashLoop as exc:
            _say(f"{exc}; stopping everything. The end of its log:")
            print(exc.process.log_tail(), flush=True)
            return 1
        time.sleep(0.2)


def run() -> int:
    """Run the stack until interrupted."""
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)
    config = StackConfig.from_env(echo=True)
    stack = LocalStack(config)
    _say(f"database {infra.redact(config.database_url)}, redis {infra.redact(config.redis_url)}")
    code = 1
    try:
        stack.start()
        _print_urls(stack)
        code = _supervise(stack)
    except _Terminated:
        code = 0
    except (StackStartError, infra.InfraError, FileNotFoundError, ValueError) as exc:
        _say(f"failed to start: {exc}")
    finally:
        # From here on no signal interrupts the stop (see _on_stop_signal).
        global _stopping
        _stopping = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _say("stopping")
        started = time.monotonic()
        stack.stop()
        _say(f"stopped in {time.monotonic() - started:.1f} s")
    return code


def prepare(create_only: bool) -> int:
    """Backing services for `make migrate` and friends, without starting the services."""
    try:
        db_url = infra.ensure_postgres()
        created = infra.ensure_database(db_url)
        _say(f"database {infra.database_name(db_url)} {'created' if created else 'exists'}")
        if not create_only:
            _say(f"redis ok: {infra.redact(infra.ensure_redis())}")
    except infra.InfraError as exc:
        _say(str(exc))
        return 1
    return 0


def install(with_browser: bool) -> int:
    """Everything the machine needs besides .venv; what cannot be done is said, not fatal.

    A server that is down and cannot be started here (not root, or a DATABASE_URL
    pointing at another machine) is reported and left: `make run` says it again, and
    the unit tests do not need it.
    """
    infra.install_system_packages(with_browser)
    for name, ensure in (("PostgreSQL", infra.ensure_postgres), ("Redis", infra.ensure_redis)):
        try:
            ensure()
        except infra.InfraError as exc:
            _say(f"{name}: {exc}")
    infra.install_npm_packages(REPO_ROOT)
    return 0


def main(argv: list[str]) -> int:
    """Dispatch the sub-command (see the module docstring)."""
    command = argv[0] if argv else "run"
    if command == "run":
        return run()
    if command == "install":
        return install(with_browser="--browser" in argv[1:])
    if command in ("infra", "createdb"):
        return prepare(create_only=command == "createdb")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
