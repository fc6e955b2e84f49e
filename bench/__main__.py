"""`python -m bench [fanout|rest|profile|order|upkeep|connects] [options]` -- see bench/README.md.

Each run prints ONE JSON line on stdout (progress goes to stderr) and appends it to
bench/results/<UTC date>.jsonl unless --no-save.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from bench.common import results_file, say
from services.shared import defaults

DEFAULT_SECRET = "bench-only-jwt-secret-0123456789abcdef"


def emit(result: dict[str, Any], save: bool) -> None:
    line = orjson.dumps(result).decode()
    print(line, flush=True)
    if save:
        path = results_file()
        with path.open("a") as f:
            f.write(line + "\n")
        say(f"appended to {path}")


def neighbour_duty(text: str) -> float:
    """`--neighbour`'s value: a share of one core, 0 to 1."""
    from bench.neighbour import check_duty

    try:
        return check_duty(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fanout_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="ours", choices=["ours", "stock", "node", "all"])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--rooms",
        type=int,
        default=0,
        help="split the clients into this many rooms; each message reaches one room "
        "(ours and node only; --target all runs node, then ours)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="messages/s published (each reaches every client; with --rooms: per room); "
        "sweep: first step",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (sweep: per step)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="rate mode: run the same load this many seconds first; RSS is taken "
        "after it (rss_mb_after_warmup) so growth after warm-up shows",
    )
    parser.add_argument("--burst", type=int, default=0, help="publish N messages flat out")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="raise the rate step by step until loss or p99 > 250 ms",
    )
    parser.add_argument("--sweep-factor", type=float, default=1.5)
    parser.add_argument("--sweep-max-steps", type=int, default=12)
    parser.add_argument("--gen-procs", type=int, default=2, help="load generator processes")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=8.0,
        help="wait this long after the last publish for deliveries",
    )
    parser.add_argument("--allow-10k", action="store_true", help="allow up to 10,000 clients")
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help="target a running gateway (loopback only); repeat per replica",
    )
    parser.add_argument(
        "--pid",
        action="append",
        type=int,
        default=[],
        help="pid of each --url gateway, for CPU/RSS numbers",
    )
    parser.add_argument(
        "--channel", default=None, help="SOCKETIO_CHANNEL of running gateways (with --url)"
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", defaults.REDIS_URL))
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("BENCH_JWT_SECRET", DEFAULT_SECRET),
        help="secret the gateways verify tokens with (theirs, with --url)",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="clients offer permessage-deflate, as every browser does",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="wait up to this many seconds for other work on the machine to stop",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="measure the servers' CPU this long with the clients connected and no traffic "
        "(server_cpu_pct_idle; 0 to skip)",
    )
    parser.add_argument(
        "--room-state",
        action="store_true",
        help="with --rooms, ours only: a window of the rooms load, then one of the same load "
        "with presence churn, typing and read markers (bench/room_state.py)",
    )
    parser.add_argument(
        "--churn",
        type=float,
        default=100.0,
        help="room state: churn users connecting (and as many disconnecting) per second",
    )
    parser.add_argument(
        "--typing-period",
        type=float,
        default=1.0,
        help="room state: seconds between two `typing` events of a room's typist",
    )
    parser.add_argument(
        "--receipt-every",
        type=int,
        default=4,
        help="room state: read notices are receipts in one room in this many (0: none)",
    )
    parser.add_argument(
        "--room-state-warmup",
        type=float,
        default=15.0,
        help="room state: seconds of the same load before each measured window",
    )
    parser.add_argument(
        "--room-state-split",
        action="store_true",
        help="room state: after the pair, a window with each part alone (presence churn, "
        "typing, read markers)",
    )
    parser.add_argument(
        "--neighbour",
        type=neighbour_duty,
        default=0.0,
        metavar="DUTY",
        help="a process beside the load spins for this share of every 10 ms (0.5: about "
        "half a core when the machine is idle, less when it is not), as a busier "
        "machine's other tenants would (bench/neighbour.py)",
    )
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--via-api",
        action="store_true",
        help="ours: post through POST /messages on a real API process (latency is "
        "POST sent -> receipt) instead of publishing to Redis",
    )


def options_from(args: argparse.Namespace, target: str) -> Any:
    from bench.fanout import Options

    if args.duration <= 0 or args.duration > 600:
        raise SystemExit("--duration must be in (0, 600] seconds")
    if args.burst and args.burst > 1_000_000:
        raise SystemExit("--burst is capped at 1,000,000 messages")
    if args.rooms < 0 or args.rooms > args.clients:
        raise SystemExit("--rooms must be between 0 (the global room) and --clients")
    return Options(
        target=target,
        clients=args.clients,
        replicas=args.replicas,
        rate=args.rate,
        duration=args.duration,
        burst=args.burst,
        sweep=args.sweep,
        sweep_factor=args.sweep_factor,
        sweep_max_steps=args.sweep_max_steps,
        gen_procs=max(1, args.gen_procs),
        connect_concurrency=args.connect_concurrency,
        drain_seconds=min(args.drain_seconds, 60.0),
        redis_url=args.redis_url,
        jwt_secret=args.jwt_secret,
        allow_10k=args.allow_10k,
        urls=args.url,
        pids=args.pid,
        channel=args.channel,
        quiet_wait=max(0.0, min(args.quiet_wait, 900.0)),
        deflate=args.deflate,
        via_api=args.via_api,
        warmup=max(0.0, min(args.warmup, 600.0)),
        rooms=args.rooms,
        idle_seconds=max(0.0, min(args.idle_seconds, 60.0)),
        room_state=args.room_state,
        churn_per_s=max(0.0, min(args.churn, 1000.0)),
        typing_period=max(0.0, args.typing_period),
        receipt_every=max(0, args.receipt_every),
        room_state_warmup=max(0.0, min(args.room_state_warmup, 120.0)),
        room_state_split=args.room_state_split,
        neighbour=args.neighbour,
    )


def run_fanout(args: argparse.Namespace) -> int:
    from bench.fanout import FanoutRun, ratios
    from stack import infra

    if not args.url:
        infra.ensure_redis(args.redis_url)
    if args.rooms and args.target == "stock":
        raise SystemExit("--rooms runs against ours and node only")
    if args.room_state and (not args.rooms or args.target != "ours" or args.url):
        raise SystemExit("--room-state needs --rooms and --target ours (gateways it starts)")
    if args.room_state and (args.sweep or args.burst):
        raise SystemExit("--room-state is a rate run (no --sweep, no --burst)")
    if args.target != "all":
        targets = [args.target]
    elif args.rooms:
        targets = ["node", "ours"]
    else:
        targets = ["stock", "node", "ours"]
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        result = FanoutRun(options_from(args, target), target).run()
        results[target] = result
        if target == "ours" and len(results) > 1:
            result["ratios"] = ratios(results)
        emit(result, not args.no_save)
    return 0


def main(argv: list[str]) -> int:
    command = "fanout"
    if argv and argv[0] in ("fanout", "rest", "profile", "order", "upkeep", "connects"):
        command, argv = argv[0], argv[1:]
    if command == "rest":
        from bench.rest import main as rest_main

        return rest_main(argv, emit)
    if command == "order":
        from bench.order_lock import main as order_main

        return order_main(argv, emit)
    if command == "upkeep":
        from bench.upkeep import main as upkeep_main

        return upkeep_main(argv, emit)
    if command == "connects":
        from bench.connects import main as connects_main

        return connects_main(argv, emit)
    parser = argparse.ArgumentParser(prog=f"python -m bench {command}", description=__doc__)
    fanout_parser(parser)
    if command == "profile":
        from bench.profile import add_arguments, run_profile

        add_arguments(parser)
        args = parser.parse_args(argv)
        return run_profile(args, options_from(args, "ours"), emit)
    return run_fanout(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
