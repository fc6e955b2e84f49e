"""`python -m bench order`: what ordering posts per room gains over one global order.

A post takes only the locks of the rooms it writes to (`chat_store_messages` and
`chat_lock_rooms`, migration 0009), so posts in different rooms never wait for each
other; the outbox relay restores one order across rooms for the clients' one cursor
(docs/DESIGN.md, "Ids in commit order"). Before, every post took one exclusive
transaction-level advisory lock, so ids were handed out in commit order across ALL
rooms.

This measures both against one throw-away database: the shipped function, and a twin
(`bench_store_global`) made from its own definition with the rooms' locks replaced by
the one global lock. `--writers` concurrent connections each store batches of `--batch` messages
in random rooms, flat out, for `--duration` seconds per run; runs alternate between the
two functions so that drift of the shared machine hits both alike. The API's own
writers are `MessageWriter` tasks: at most two batches in flight per API process, and
the batch grows with the load (writer.py), so 2-8 writers and batches of 1-64 are the
range that matters.

Reported per (rooms, writers, batch): messages per second, transaction p50/p99, and the
per-room/global throughput ratio (> 1: the global order costs that much).

`--via-api` measures the same comparison end to end instead: one API process (the
launcher's stack on a throw-away database, rate limits off) takes `POST
/rooms/{room}/messages` into `--rooms` rooms from `--concurrency` keep-alive
connections (bench/httpload.py), while `chat_store_messages` is swapped, between paired
runs, for its per-room twin under its own name. That shows whether the lock is what
bounds posting at the rate one API process can feed it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench.common import TEXT, say, utc_stamp, wait_for_quiet
from bench.room_state import counter_deltas, scrape_url

GLOBAL = "bench_store_global"
PER_ROOM = "chat_store_messages"
MEMBERS = 32  # accounts, each a member of every room
LOCK_LINE = "PERFORM pg_advisory_xact_lock(order_lock_key);"
PER_ROOM_LOCK = "PERFORM chat_lock_rooms(room_ids, order_lock_key);"


async def prepare(url: str, rooms: int) -> tuple[list[str], list[str]]:
    """Migrate, create the accounts and rooms, and the global twin; return (users, rooms)."""
    from services.api_service.db.migrate import migrate

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        users = [
            str(
                await conn.fetchval(
                    "INSERT INTO users (name, email, password_hash) VALUES ($1, $2, 'x')"
                    " RETURNING id",
                    f"bench {n}",
                    f"bench{n}@bench.invalid",
                )
            )
            for n in range(MEMBERS)
        ]
        room_ids = await add_rooms(conn, users, rooms)
        await create_twin(conn)
        await conn.execute("ANALYZE")
        return users, room_ids
    finally:
        await conn.close()


async def writer(
    url: str,
    function: str,
    users: list[str],
    rooms: list[str],
    batch: int,
    until: float,
    latencies: list[float],
) -> int:
    """Store batches flat out until `until`; return how many messages were stored."""
    conn = await asyncpg.connect(url)
    stored = 0
    rng = random.Random()
    statement = await conn.prepare(
        f"SELECT count(*) FROM {function}("
        "$1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], 42, NULL)"
    )
    try:
        while time.monotonic() < until:
            owners = [rng.choice(users) for _ in range(batch)]
            started = time.perf_counter()
            await statement.fetchval(
                [uuid.uuid4() for _ in range(batch)],
                owners,
                [rng.choice(rooms) for _ in range(batch)],
                ["bench"] * batch,
                [TEXT] * batch,
                [None] * batch,  # no replies
            )
            latencies.append(time.perf_counter() - started)
            stored += batch
    finally:
        await conn.close()
    return stored


async def measure(
    url: str,
    function: str,
    users: list[str],
    rooms: list[str],
    writers: int,
    batch: int,
    seconds: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    until = time.monotonic() + seconds
    started = time.monotonic()
    counts = await asyncio.gather(
        *(writer(url, function, users, rooms, batch, until, latencies) for _ in range(writers))
    )
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "msgs_per_s": round(sum(counts) / elapsed),
        "tx_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "tx_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


async def run(args: argparse.Namespace, url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for room_count in args.rooms:
        users, rooms = await prepare_once(url, room_count)
        for writers in args.writers:
            for batch in args.batch:
                runs: dict[str, list[dict[str, Any]]] = {GLOBAL: [], PER_ROOM: []}
                for _ in range(args.rounds):
                    for function in (GLOBAL, PER_ROOM):
                        runs[function].append(
                            await measure(
                                url, function, users, rooms, writers, batch, args.duration
                            )
                        )
                row = summarize(room_count, writers, batch, runs)
                say(f"order: {row}")
                rows.append(row)
    return rows


_prepared: dict[str, tuple[list[str], list[str]]] = {}


async def prepare_once(url: str, rooms: int) -> tuple[list[str], list[str]]:
    """The accounts, and `rooms` rooms (the database is migrated on the first call)."""
    if "base" not in _prepared:
        _prepared["base"] = await prepare(url, rooms)
        return _prepared["base"]
    users, _ = _prepared["base"]
    conn = await asyncpg.connect(url)
    try:
        return users, await add_rooms(conn, users, rooms)
    finally:
        await conn.close()


async def add_rooms(conn: asyncpg.Connection, users: list[str], count: int) -> list[str]:
    """`count` new private rooms, each with every one of `users` as a member."""
    room_ids = [str(uuid.uuid4()) for _ in range(count)]
    await conn.executemany(
        "INSERT INTO rooms (id, kind, name) VALUES ($1::uuid, 'private', 'bench')",
        [(room,) for room in room_ids],
    )
    await conn.executemany(
        "INSERT INTO room_members (room_id, user_id, role) VALUES ($1::uuid, $2::uuid, 'member')",
        [(room, user) for room in room_ids for user in users],
    )
    return room_ids


def summarize(
    rooms: int, writers: int, batch: int, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    def median(function: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[function]))

    global_rate, per_room_rate = median(GLOBAL, "msgs_per_s"), median(PER_ROOM, "msgs_per_s")
    return {
        "rooms": rooms,
        "writers": writers,
        "batch": batch,
        "global": {k: median(GLOBAL, k) for k in ("msgs_per_s", "tx_p50_ms", "tx_p99_ms")},
        "per_room": {k: median(PER_ROOM, k) for k in ("msgs_per_s", "tx_p50_ms", "tx_p99_ms")},
        "per_room_over_global": round(per_room_rate / global_rate, 3) if global_rate else None,
    }


async def swap_store_function(url: str, per_room: bool) -> None:
    """Make `chat_store_messages` order per room (as shipped) or globally (the twin)."""
    conn = await asyncpg.connect(url)
    try:
        twin = await conn.fetchval(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.proname = $1", GLOBAL
        )
        body = twin.replace(f"public.{GLOBAL}(", f"public.{PER_ROOM}(", 1)
        if per_room:
            body = body.replace(LOCK_LINE, PER_ROOM_LOCK)
        await conn.execute(body)
    finally:
        await conn.close()


async def post_load(
    api_url: str, token: str, rooms: list[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    """POST flat out into random rooms; messages per second and latency."""
    from urllib.parse import urlsplit as split

    from bench.common import latency_summary
    from bench.httpload import request_head, run_load

    address = split(api_url)
    heads = [
        request_head(
            "POST",
            address.netloc,
            f"/rooms/{room}/messages",
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        for room in rooms
    ]

    def make() -> bytes:
        payload = b'{"id":"%s","text":"%s"}' % (str(uuid.uuid4()).encode(), TEXT.encode())
        return random.choice(heads) + b"Content-Length: %d\r\n\r\n" % len(payload) + payload

    relay_before = relay_counters(api_url)
    result, elapsed = await run_load(
        address.hostname or "127.0.0.1", address.port or 80, make, concurrency, seconds
    )
    relay = counter_deltas(relay_before, relay_counters(api_url))
    ok = sum(n for status, n in result.statuses.items() if 200 <= status < 300)
    return {
        "msgs_per_s": round(ok / elapsed),
        "failed": len(result.latencies) - ok,
        **latency_summary(result.latencies),
        "relay_hole_waits": relay.get("chat_relay_hole_waits_total", 0.0),
        "publish_lag_p99_ms": lag_quantile(relay, 0.99),
    }


RELAY_SERIES = (
    "chat_relay_hole_waits_total",
    "chat_relay_published_total",
    "chat_relay_publish_lag_seconds_bucket",
)


def relay_counters(api_url: str) -> dict[str, float]:
    """The relay's series from the API's /metrics (the one process of this bench)."""
    return scrape_url(f"{api_url}/metrics", RELAY_SERIES)


def lag_quantile(deltas: dict[str, float], q: float) -> float | None:
    """The upper bound (ms) of the publish-lag bucket that holds quantile `q` of a window."""
    buckets = sorted(
        (float(key.split('le="')[1].rstrip('"}')), count)
        for key, count in deltas.items()
        if key.startswith("chat_relay_publish_lag_seconds_bucket")
    )
    total = deltas.get('chat_relay_publish_lag_seconds_bucket{le="+Inf"}', 0.0)
    for bound, count in buckets:
        if total and count >= q * total:
            return round(bound * 1000, 1)
    return None


def run_via_api(args: argparse.Namespace, url: str, redis_url: str) -> list[dict[str, Any]]:
    """The paired end-to-end runs (see the module docstring)."""
    import uvloop

    from bench.common import REPO_ROOT
    from bench.rest import sign_up
    from stack import LocalStack, StackConfig

    config = StackConfig.ephemeral(
        url,
        redis_url,
        gateways=2,
        log_dir=REPO_ROOT / ".run" / "bench-logs" / "order",
        extra_env={
            "JWT_SECRET": "bench-only-jwt-secret-0123456789abcdef",
            "SOCKETIO_CHANNEL": f"bench-order-{secrets.token_hex(4)}",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
            "RATE_LIMIT_ROOM_POSTS_PER_MINUTE": "0",
            "APP_ENV": "development",
        },
    )
    stack = LocalStack(config)
    stack.start()
    rows: list[dict[str, Any]] = []
    try:
        token, user = asyncio.run(sign_up(stack.api_url))
        asyncio.run(prepare_twin(url))
        for room_count in args.rooms:
            rooms = asyncio.run(add_rooms_for(url, [user], room_count))
            for concurrency in args.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {GLOBAL: [], PER_ROOM: []}
                for _ in range(args.rounds):
                    for function in (GLOBAL, PER_ROOM):
                        asyncio.run(swap_store_function(url, per_room=function == PER_ROOM))
                        runs[function].append(
                            uvloop.run(
                                post_load(stack.api_url, token, rooms, concurrency, args.duration)
                            )
                        )
                row = summarize_api(room_count, concurrency, runs)
                say(f"order via API: {row}")
                rows.append(row)
        asyncio.run(swap_store_function(url, per_room=True))
    finally:
        stack.stop()
    return rows


async def prepare_twin(url: str) -> None:
    """The global twin next to the shipped function (the database is already migrated)."""
    conn = await asyncpg.connect(url)
    try:
        await create_twin(conn)
    finally:
        await conn.close()


async def create_twin(conn: asyncpg.Connection) -> None:
    """`bench_store_global`: the shipped function's own text with the one global lock."""
    definition = await conn.fetchval(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.proname = $1", PER_ROOM
    )
    if PER_ROOM_LOCK not in definition:
        raise SystemExit(f"{PER_ROOM} no longer takes the locks this bench replaces")
    twin = definition.replace(f"public.{PER_ROOM}(", f"public.{GLOBAL}(", 1)
    await conn.execute(twin.replace(PER_ROOM_LOCK, LOCK_LINE))


async def add_rooms_for(url: str, users: list[str], count: int) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return await add_rooms(conn, users, count)
    finally:
        await conn.close()


def summarize_api(
    rooms: int, concurrency: int, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    def median(function: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[function]))

    keys = ("msgs_per_s", "p50_ms", "p99_ms", "failed", "relay_hole_waits", "publish_lag_p99_ms")
    global_rate, per_room_rate = median(GLOBAL, "msgs_per_s"), median(PER_ROOM, "msgs_per_s")
    return {
        "rooms": rooms,
        "concurrency": concurrency,
        "global": {k: median(GLOBAL, k) for k in keys},
        "per_room": {k: median(PER_ROOM, k) for k in keys},
        "per_room_over_global": round(per_room_rate / global_rate, 3) if global_rate else None,
    }


def main(argv: list[str], emit: Callable[[dict[str, Any], bool], None]) -> int:
    from stack import infra

    parser = argparse.ArgumentParser(
        prog="python -m bench order",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rooms", type=int, action="append", help="repeat; default 1, 1000")
    parser.add_argument("--writers", type=int, action="append", help="repeat; default 2, 4, 8")
    parser.add_argument("--batch", type=int, action="append", help="repeat; default 1, 16, 64")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run (<= 60)")
    parser.add_argument("--rounds", type=int, default=2, help="paired runs per point (1..5)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", infra.DEFAULT_DATABASE_URL),
        help="server to use; a throw-away database is created next to it",
    )
    parser.add_argument("--via-api", action="store_true", help="end to end through the API")
    parser.add_argument(
        "--concurrency", type=int, action="append", help="--via-api: repeat; default 32"
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", infra.DEFAULT_REDIS_URL))
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    args.rooms = args.rooms or [1, 1000]
    args.writers = args.writers or [2, 4, 8]
    args.batch = args.batch or [1, 16, 64]
    args.concurrency = args.concurrency or [32]
    if not 0 < args.duration <= 60 or not 1 <= args.rounds <= 5 or max(args.writers) > 64:
        raise SystemExit("--duration is capped at 60 s, --rounds at 5, --writers at 64")
    parts = urlsplit(args.database_url)
    url = parts._replace(path=f"/chat_bench_order_{secrets.token_hex(4)}").geturl()
    infra.ensure_postgres(args.database_url)
    infra.ensure_database(url)
    busy = wait_for_quiet(min(args.quiet_wait, 900.0)) if args.quiet_wait > 0 else None
    try:
        if args.via_api:
            infra.ensure_redis(args.redis_url)
            rows = run_via_api(args, url, args.redis_url)
        else:
            rows = asyncio.run(run(args, url))
    finally:
        infra.drop_database(url)
    emit(
        {
            "bench": "order_via_api" if args.via_api else "order",
            "at": utc_stamp(),
            "cpus": os.cpu_count(),
            "duration_s": args.duration,
            "rounds": args.rounds,
            "machine_busy_pct_before": busy,
            "note": (
                "POST /rooms/{room}/messages to one API process, chat_store_messages swapped "
                "between the shipped per-room locks and the twin with one global lock"
                if args.via_api
                else "chat_store_messages (locks only the batch's rooms) against a twin "
                "with one global order lock"
            )
            + "; synchronous_commit on; medians of paired runs",
            "points": rows,
        },
        not args.no_save,
    )
    return 0
