"""`python -m bench profile`: py-spy on one of our gateways while the fan-out load runs.

Runs the same load as `python -m bench --target ours` (the duration is stretched to
cover the profile) and, during the measured window, two py-spy samplers on gateway 1:
a flame graph (SVG) and raw collapsed stacks, from which the top functions by own
("self") and inclusive ("total") samples are printed to stderr and put in the JSON.
Idle samples (the loop waiting in epoll) are excluded, so percentages are of the time
the gateway was busy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, RESULTS_DIR, say
from bench.fanout import FanoutRun, Options, WindowResult

PY_SPY = Path(sys.executable).with_name("py-spy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--sample-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)


def _short(frame: str) -> str:
    """`func (path:line)` -> `func (module-ish path)` without the line number."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", str(REPO_ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


# Entry frames every sample passes through; they say nothing in the "total" table.
ENTRY = (
    "_run_module_as_main",
    "_run_code",
    "<module>",
    "main",
    "serve",
    "run_app",
    "run_until_complete",
    "run_forever",
    "run",
)
# The outermost frame gets the samples taken while uvloop runs its own C code.
NATIVE_LOOP = "[event loop native code: uvloop I/O + scheduling, attributed to run_app]"


def top_functions(raw: str, top: int) -> dict[str, Any]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        leaf = frames[-1]
        own[NATIVE_LOOP if leaf.startswith("run_app (") else leaf] += count
        for frame in set(frames):
            if frame.split(" (", 1)[0] not in ENTRY:
                total[frame] += count

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "samples": n, "pct": round(100.0 * n / samples, 1) if samples else 0.0}
            for f, n in counter.most_common(top)
        ]

    return {"samples": samples, "self": table(own), "total": table(total)}


class ProfiledRun(FanoutRun):
    def __init__(self, opts: Options, seconds: float, rate: int, top: int) -> None:
        super().__init__(opts, "ours")
        self.seconds = seconds
        self.rate = rate
        self.top = top
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        self.svg = RESULTS_DIR / f"profile-{stamp}.svg"
        self.raw = RESULTS_DIR / f"profile-{stamp}.collapsed.txt"
        self.profile: dict[str, Any] = {}

    def window(self, count: int, rate: float | None, drain: float) -> WindowResult:
        if self.priming:
            return super().window(count, rate, drain)
        assert self.fleet is not None
        pid = self.fleet.servers[0].pid
        common = [
            "record",
            "--pid",
            str(pid),
            "-d",
            str(int(self.seconds)),
            "-r",
            str(self.rate),
            "--nonblocking",
        ]
        say(f"py-spy on {self.fleet.servers[0].name} (pid {pid}) for {self.seconds:.0f}s")
        spies = [
            subprocess.Popen(
                [str(PY_SPY), *common, "-o", str(self.svg)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ),
            subprocess.Popen(
                [str(PY_SPY), *common, "--format", "raw", "-o", str(self.raw)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ),
        ]
        result = super().window(count, rate, drain)
        errors = []
        for spy in spies:
            try:
                _, err = spy.communicate(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate()
            if spy.returncode != 0:
                errors.append(err.decode(errors="replace")[-400:])
        self.profile = {
            "pid": pid,
            "seconds": self.seconds,
            "sample_rate": self.rate,
            "svg": str(self.svg.relative_to(REPO_ROOT)),
            "collapsed": str(self.raw.relative_to(REPO_ROOT)),
            "errors": errors,
            "note": "py-spy --nonblocking, idle excluded; self = own samples",
        }
        if self.raw.exists():
            self.profile |= top_functions(self.raw.read_text(), self.top)
        return result


def run_profile(args: argparse.Namespace, opts: Options, emit: Any) -> int:
    from stack import infra

    if not PY_SPY.exists():
        raise SystemExit(f"{PY_SPY} missing: pip install py-spy (the `bench` extra)")
    infra.ensure_redis(opts.redis_url)
    opts.duration = max(opts.duration, args.profile_seconds + 5)
    opts.sweep = False
    opts.burst = 0
    started = time.monotonic()
    run = ProfiledRun(opts, args.profile_seconds, args.sample_rate, args.top)
    result = run.run()
    result["bench"] = "profile"
    result["profile"] = run.profile
    say(f"profile done in {time.monotonic() - started:.0f}s; flame graph {run.profile.get('svg')}")
    for kind in ("self", "total"):
        say(f"top functions by {kind} samples ({run.profile.get('samples', 0)} busy samples):")
        for row in run.profile.get(kind, []):
            say(f"  {row['pct']:5.1f}%  {row['function']}")
    emit(result, not args.no_save)
    return 0
