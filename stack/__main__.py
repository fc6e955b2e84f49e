"""`python -m stack [run|infra|createdb]`, the command line behind the Makefile.

run       (default; `make run`) start everything, print the URLs, stop on Ctrl-C.
          Exits 0 after Ctrl-C / SIGTERM, 1 if the stack failed to start or a child
          died on its own (the others are stopped then too: a half-running stack is
          more confusing than none).
infra     make sure PostgreSQL (with the database) and Redis are up, then exit.
createdb  create the database named in DATABASE_URL if missing (`make migrate`).
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

from stack import infra
from stack.local import LocalStack, StackConfig
from stack.process import StackStartError


class _Terminated(Exception):
    """Raised in the main thread by SIGTERM so it unwinds like Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _say(text: str) -> None:
    print(f"[stack] {text}", flush=True)


def _print_urls(stack: LocalStack) -> None:
    width = max(len(label) for label in stack.urls())
    _say("all services are ready:")
    for label, url in stack.urls().items():
        print(f"    {label:<{width}}  {url}", flush=True)
    _say("press Ctrl-C to stop")


def _watch(stack: LocalStack) -> int:
    """Block until a child dies (returns 1) or we are interrupted (the exception escapes)."""
    while True:
        failed = stack.failed_process()
        if failed is not None:
            _say(f"{failed.name} exited with {failed.returncode()}; stopping the rest")
            print(failed.log_tail(), flush=True)
            return 1
        time.sleep(0.5)


def run() -> int:
    """Run the stack until interrupted."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    config = StackConfig.from_env(echo=True)
    stack = LocalStack(config)
    _say(f"database {infra.redact(config.database_url)}, redis {infra.redact(config.redis_url)}")
    try:
        stack.start()
        _print_urls(stack)
        return _watch(stack)
    except (KeyboardInterrupt, _Terminated):
        _say("stopping")
        return 0
    except (StackStartError, infra.InfraError, FileNotFoundError, ValueError) as exc:
        _say(f"failed to start: {exc}")
        return 1
    finally:
        # A second Ctrl-C must not abandon children half-stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


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


def main(argv: list[str]) -> int:
    """Dispatch the sub-command (see the module docstring)."""
    command = argv[0] if argv else "run"
    if command == "run":
        return run()
    if command in ("infra", "createdb"):
        return prepare(create_only=command == "createdb")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
