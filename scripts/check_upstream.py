"""`make check-upstream`: the gateway's tests against the newest releases of its libraries.

The project pins aiohttp, python-engineio, python-socketio and redis, and the gateway
relies on a few of their private names (services/realtime_service/seams/). This builds a
throw-away virtualenv under .run/ with the newest releases of the four (the project's
other dependencies as pinned), prints which touchpoints broke, then runs the gateway's
unit tests and its integration tests in it. The virtualenv is removed afterwards. It is
not part of `make test`: a new release breaking a touchpoint is news, not a failed
build.

Exit status: 0 when every touchpoint holds and every test passes, 1 otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ("aiohttp", "python-engineio", "python-socketio", "redis")
TEST_TOOLS = ("pytest", "pytest-aiohttp", "pytest-asyncio", "pytest-timeout", "PyYAML")
GATEWAY_TESTS = (
    "tests/unit/test_library_touchpoints.py",
    "tests/unit/test_transport.py",
    "tests/unit/test_broadcast.py",
    "tests/unit/test_rooms.py",
    "tests/unit/test_heartbeat.py",
    "tests/unit/test_packet_queue.py",
    "tests/unit/test_inbound.py",
    "tests/integration/test_gateway_isolation.py",
    "tests/integration/test_transport.py",
    "tests/integration/test_protocol.py",
    "tests/integration/test_gateway_guard.py",
    "tests/integration/test_fanout.py",
    "tests/integration/test_node_client.py",
    "tests/integration/test_realtime_auth.py",
    "tests/integration/test_revocation.py",
)
# Prints one line per touchpoint, run by the throw-away environment's interpreter.
CHECK_TOUCHPOINTS = """
from services.realtime_service.seams import TouchpointChanged, every_touchpoint
broken = 0
for touchpoint in every_touchpoint():
    try:
        touchpoint.check()
    except Exception as exc:
        broken += 1
        print(f"BROKEN  {touchpoint.name}\\n        {exc}")
    else:
        print(f"ok      {touchpoint.name}")
raise SystemExit(1 if broken else 0)
"""


def name_of(requirement: str) -> str:
    return re.split(r"[\\[=<>!~; ]", requirement, maxsplit=1)[0].lower()


def requirements() -> list[str]:
    """The project's pinned dependencies except the four, the newest of the four, and pytest's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned_tests = {name_of(r): r for r in project["optional-dependencies"]["test"]}
    kept = [r for r in project["dependencies"] if name_of(r) not in UPSTREAM]
    newest = ["aiohttp", "python-engineio", "python-socketio", "redis[hiredis]"]
    return kept + newest + [pinned_tests.get(tool.lower(), tool) for tool in TEST_TOOLS]


def run(argv: list[str], **kwargs: object) -> int:
    print("+", " ".join(argv if "-c" not in argv else argv[: argv.index("-c") + 1]), flush=True)
    return subprocess.run(argv, cwd=ROOT, check=False, **kwargs).returncode  # type: ignore[call-overload]


def main() -> int:
    env_dir = ROOT / ".run" / "check-upstream-venv"
    shutil.rmtree(env_dir, ignore_errors=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        pip = [python, "-m", "pip", "install", "--quiet", "--upgrade", "--no-warn-conflicts"]
        if run([*pip, *requirements()], stderr=subprocess.DEVNULL) != 0:
            print("check-upstream: could not install the newest releases")
            return 1
        versions = subprocess.run(
            [python, "-m", "pip", "show", *UPSTREAM], capture_output=True, text=True, check=False
        ).stdout
        found = dict(re.findall(r"^Name: (\S+)\nVersion: (\S+)", versions, flags=re.MULTILINE))
        print("newest releases:", ", ".join(f"{name} {version}" for name, version in found.items()))
        print("\ntouchpoints (services/realtime_service/seams/):", flush=True)
        touchpoints_ok = run([python, "-c", CHECK_TOUCHPOINTS]) == 0
        print("\ngateway tests:", flush=True)
        tests = [test for test in GATEWAY_TESTS if (ROOT / test).exists()]
        tests_ok = (
            run(
                [
                    python,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-o",
                    "addopts=-ra",
                    *tests,
                ]
            )
            == 0
        )
        print(
            f"\ncheck-upstream: touchpoints {'hold' if touchpoints_ok else 'BROKEN'}, "
            f"gateway tests {'pass' if tests_ok else 'FAIL'} "
            f"({', '.join(f'{n} {v}' for n, v in found.items())})"
        )
        return 0 if touchpoints_ok and tests_ok else 1
    finally:
        shutil.rmtree(env_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
