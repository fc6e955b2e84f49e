"""`python -m bench rest`: REST throughput/latency next to pgbench doing the same SQL.

Starts a LocalStack (stack/) on free ports against a throw-away database and signs one
user up. Then, in each of --rounds rounds and at each concurrency, it runs back to back:

  POST /messages              straight at the API (no load balancer)
  pgbench insert              the same single-row INSERT into `bench_insert`, a twin of
                              the messages table (same columns, keys, indexes and
                              foreign key), so the relay never sees these rows
  GET /messages?limit=50      straight at the API
  pgbench select50            the newest 50 messages, what that GET reads

each for --duration seconds, with the stack up and idle during pgbench's runs. Each
ratio compares two runs a few seconds apart, which matters on a shared machine whose
disk flush and CPU speed drift over minutes; the reported ratio is the median over the
rounds. After the rounds the stack is stopped and pgbench runs `api_tx`, the statement
POST runs for a batch of one (`chat_store_messages`: order lock, INSERT .. RETURNING,
duplicate lookup, NOTIFY), once per concurrency. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import uvloop

from bench.common import (
    CLK_TCK,
    REPO_ROOT,
    TEXT,
    cpu_ticks,
    latency_summary,
    machine_busy_ticks,
    say,
    utc_stamp,
    wait_for_quiet,
)
from bench.httpload import get_request, post_json_request, run_load

DEFAULT_SECRET = "bench-only-jwt-secret-0123456789abcdef"


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    if not candidates:
        raise SystemExit(
            "pgbench not found: apt-get install postgresql-client (or postgresql-contrib)"
        )
    return candidates[-1]


def postgres_ticks() -> dict[int, int]:
    """CPU ticks of every process named postgres (server and backends), by pid."""
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        ticks[int(entry)] = cpu_ticks(int(entry)) or 0
    return ticks


def ticks_since(before: dict[int, int], after: dict[int, int]) -> int:
    """Ticks used between two samples by the processes alive at the second one.

    Per pid, so a backend that exits in between (pgbench's, say) is not counted as
    negative time.
    """
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items())


async def http_load(
    base: str, token: str, method: str, concurrency: int, duration: float
) -> dict[str, Any]:
    """`concurrency` keep-alive connections, one request in flight each, for `duration` s."""
    address = urlsplit(base)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    headers = {"Authorization": f"Bearer {token}"}
    if method == "POST":
        make = post_json_request(
            address.netloc, "/messages", headers, lambda: {"id": str(uuid.uuid4()), "text": TEXT}
        )
    else:
        make = get_request(address.netloc, "/messages?limit=50", headers)
    result, elapsed = await run_load(host, port, make, concurrency, duration)
    ok = sum(n for status, n in result.statuses.items() if 200 <= status < 300)
    return {
        "requests": len(result.latencies),
        "ok": ok,
        "connection_errors": result.errors,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "rps": round(ok / elapsed, 1),
        "latency_ms": latency_summary(result.latencies),
        "seconds": round(elapsed, 2),
    }


async def sign_up(base: str) -> tuple[str, str]:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/signup",
            json={"name": "bench", "email": email, "password": "bench-password-123"},
        ) as r:
            if r.status != 201:
                raise SystemExit(f"signup failed: {r.status} {await r.text()}")
        async with session.post(
            f"{base}/signin", json={"email": email, "password": "bench-password-123"}
        ) as r:
            body = await r.json()
            if r.status != 200:
                raise SystemExit(f"signin failed: {r.status} {body}")
            return body["token"], body["userId"]


def measure_http(
    stack: Any, token: str, method: str, concurrency: int, duration: float
) -> dict[str, Any]:
    """One load run against the API, with the CPU each party used meanwhile."""
    api_pid = stack.api.pid
    api0, pg0, me0, t0 = (
        cpu_ticks(api_pid) or 0,
        postgres_ticks(),
        cpu_ticks(os.getpid()) or 0,
        time.monotonic(),
    )
    m0 = machine_busy_ticks()
    row = uvloop.run(http_load(stack.api_url, token, method, concurrency, duration))
    wall = time.monotonic() - t0
    row["concurrency"] = concurrency
    row["api_cpu_pct"] = round(100 * ((cpu_ticks(api_pid) or 0) - api0) / CLK_TCK / wall, 1)
    row["postgres_cpu_pct"] = round(100 * ticks_since(pg0, postgres_ticks()) / CLK_TCK / wall, 1)
    row["generator_cpu_pct"] = round(
        100 * ((cpu_ticks(os.getpid()) or 0) - me0) / CLK_TCK / wall, 1
    )
    row["machine_cpu_pct"] = round(100 * (machine_busy_ticks() - m0) / CLK_TCK / wall, 1)
    # CPU per request is steadier than requests/s on a shared machine.
    # percent of a core / requests per second * 10,000 = µs of CPU per request
    for name in ("api", "machine"):
        per_request = row[f"{name}_cpu_pct"] * 10_000 / row["rps"] if row["rps"] else 0.0
        row[f"{name}_cpu_us_per_request"] = round(per_request)
    say(
        f"  -> {method} {row['rps']} req/s p50 {row['latency_ms']['p50_ms']} ms p99 "
        f"{row['latency_ms']['p99_ms']} ms,"
        f" API {row['api_cpu_us_per_request']} µs CPU per request"
    )
    return row


TWIN_TABLE = "bench_insert"


def create_twin_table(database_url: str) -> None:
    """`bench_insert`: the messages table's twin, for pgbench's bare INSERT.

    Same columns, identity, keys and indexes (LIKE .. INCLUDING ALL) plus the foreign key
    LIKE leaves out, so an insert costs what one into `messages` costs; the relay reads
    only `messages`, so these rows are never published.
    """
    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                f"CREATE TABLE {TWIN_TABLE} (LIKE messages INCLUDING ALL, "
                "FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE)"
            )
        finally:
            await conn.close()

    asyncio.run(create())


def pgbench_scripts(directory: Path, owner: str) -> dict[str, Path]:
    from services.api_service.db.messages import MESSAGE_ORDER_LOCK_KEY
    from services.shared.rooms import GLOBAL_ROOM_ID

    text = TEXT.replace("'", "''")
    cid = "md5(:r::text || ':' || :client_id::text)::uuid"
    scripts = {
        "insert": (
            f"INSERT INTO {TWIN_TABLE} (client_id, owner_id, user_name, text) "
            f"VALUES (gen_random_uuid(), '{owner}', 'bench', '{text}');\n"
        ),
        "api_tx": (
            "\\set r random(1, 9000000000000000000)\n"
            f"SELECT * FROM chat_store_messages(ARRAY[{cid}], ARRAY['{owner}'::uuid], "
            f"ARRAY['{GLOBAL_ROOM_ID}'::uuid], ARRAY['bench'], ARRAY['{text}'], "
            f"ARRAY[NULL::bigint], {MESSAGE_ORDER_LOCK_KEY}, 'bench_not_the_relay');\n"
        ),
        "select50": (
            "SELECT id, client_id, owner_id, user_name, text, created_at FROM messages "
            "ORDER BY id DESC LIMIT 50;\n"
        ),
    }
    paths = {}
    for name, body in scripts.items():
        path = directory / f"{name}.sql"
        path.write_text(body)
        paths[name] = path
    return paths


def parse_pgbench(output: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("tps ="):
            result["tps"] = round(float(line.split()[2]), 1)
        elif line.startswith("latency average ="):
            result["latency_avg_ms"] = float(line.split()[3])
        elif line.startswith("latency stddev ="):
            result["latency_stddev_ms"] = float(line.split()[3])
        elif line.startswith("number of failed transactions:"):
            result["failed"] = int(line.split(":")[1].split()[0])
        elif line.startswith("number of transactions actually processed:"):
            result["transactions"] = int(line.split(":")[1].split("/")[0].strip())
    return result


def run_pgbench(
    database_url: str, script: Path, concurrency: int, duration: float
) -> dict[str, Any]:
    """One pgbench run of `script` with `concurrency` clients for `duration` seconds."""
    parts = urlsplit(database_url)
    say(f"pgbench: {script.stem} at -c {concurrency} for {duration}s")
    argv = [
        pgbench_binary(),
        "-n",
        "-f",
        str(script),
        "-c",
        str(concurrency),
        "-j",
        str(min(concurrency, 2)),
        "-T",
        str(int(duration)),
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
        parts.path.lstrip("/"),
    ]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, check=False, timeout=duration + 60
    )
    if done.returncode != 0:
        return {"concurrency": concurrency, "error": done.stderr.strip()[-500:]}
    row = parse_pgbench(done.stdout) | {"concurrency": concurrency}
    say(f"  -> {row.get('tps')} tps avg {row.get('latency_avg_ms')} ms")
    return row


def run_rounds(
    stack: Any,
    token: str,
    db_url: str,
    scripts: dict[str, Path],
    concurrencies: list[int],
    duration: float,
    rounds: int,
) -> dict[str, Any]:
    """Each API run next to the pgbench run it is compared with; see the module docstring."""
    out: dict[str, Any] = {
        "post_messages": [],
        "get_messages_limit50": [],
        "pgbench": {"insert": [], "select50": [], "api_tx": []},
    }
    for round_no in range(1, rounds + 1):
        for c in concurrencies:
            say(f"rest: round {round_no}/{rounds}, concurrency {c}")
            tag = {"round": round_no}
            out["post_messages"].append(measure_http(stack, token, "POST", c, duration) | tag)
            out["pgbench"]["insert"].append(
                run_pgbench(db_url, scripts["insert"], c, duration) | tag
            )
            out["get_messages_limit50"].append(measure_http(stack, token, "GET", c, duration) | tag)
            out["pgbench"]["select50"].append(
                run_pgbench(db_url, scripts["select50"], c, duration) | tag
            )
    return out


def main(argv: list[str], emit: Callable[[dict[str, Any], bool], None]) -> int:
    from stack import LocalStack, StackConfig, infra

    parser = argparse.ArgumentParser(
        prog="python -m bench rest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--concurrency", type=int, action="append", default=None, help="repeat; default 1, 8, 32"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (<= 120)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of paired runs (1..10)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", infra.DEFAULT_DATABASE_URL),
        help="server to use; a throw-away database is created next to it",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", infra.DEFAULT_REDIS_URL))
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="wait up to this many seconds for other work on the machine to stop",
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    concurrencies = args.concurrency or [1, 8, 32]
    if max(concurrencies) > 256 or not 0 < args.duration <= 120 or not 1 <= args.rounds <= 10:
        raise SystemExit("concurrency is capped at 256, --duration at 120 s and --rounds at 10")
    parts = urlsplit(args.database_url)
    db_name = f"chat_bench_{secrets.token_hex(4)}"
    db_url = parts._replace(path=f"/{db_name}").geturl()
    infra.ensure_postgres(args.database_url)
    infra.ensure_redis(args.redis_url)
    infra.ensure_database(db_url)
    say(f"rest: throw-away database {db_name}")
    busy = wait_for_quiet(min(args.quiet_wait, 900.0)) if args.quiet_wait > 0 else None
    channel = f"bench-rest-{secrets.token_hex(4)}"
    config = StackConfig.ephemeral(
        db_url,
        args.redis_url,
        gateways=2,
        log_dir=REPO_ROOT / ".run" / "bench-logs" / "rest",
        extra_env={
            "JWT_SECRET": DEFAULT_SECRET,
            "SOCKETIO_CHANNEL": channel,
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_MESSAGES_PER_MINUTE": "0",
            "RATE_LIMIT_HISTORY_ROWS_PER_MINUTE": "0",
            "APP_ENV": "development",
        },
    )
    result: dict[str, Any] = {
        "bench": "rest",
        "at": utc_stamp(),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "concurrency": concurrencies,
        "note": "HTTP straight to one API process (no LB); rate limits off; "
        "one generator process (bench/httpload.py, raw keep-alive HTTP/1.1); "
        "each API run paired with the pgbench run right after it",
        "machine_busy_pct_before": busy,
        "pgbench_binary": pgbench_binary(),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stack = LocalStack(config)
            stack.start()
            try:
                create_twin_table(db_url)
                token, owner = asyncio.run(sign_up(stack.api_url))
                scripts = pgbench_scripts(Path(tmp), owner)
                result.update(
                    run_rounds(
                        stack, token, db_url, scripts, concurrencies, args.duration, args.rounds
                    )
                )
            finally:
                stack.stop()
            for c in concurrencies:  # the relay is down: these rows go nowhere
                result["pgbench"]["api_tx"].append(
                    run_pgbench(db_url, scripts["api_tx"], c, args.duration)
                )
        result["ratios"] = rest_ratios(result)
        say(f"rest: ratios {result['ratios']}")
    finally:
        try:
            infra.drop_database(db_url)
            import redis

            from services.shared.redis_contract import history_stream_key

            client = redis.Redis.from_url(args.redis_url)
            client.delete(history_stream_key(channel))
            client.close()
        except Exception as exc:  # noqa: BLE001
            say(f"cleanup failed: {exc!r}")
    emit(result, not args.no_save)
    return 0


def rest_ratios(result: dict[str, Any]) -> dict[str, Any]:
    """API requests/s over pgbench tps, per concurrency: the median over rounds of each
    API run against the pgbench run next to it (all rounds' values under `..._by_round`).
    `post_vs_pgbench_api_tx` uses the median POST rate against the one api_tx run.
    """
    out: dict[str, Any] = {}
    pg = result["pgbench"]
    for label, api_key, script in (
        ("post_vs_pgbench_insert", "post_messages", "insert"),
        ("get_vs_pgbench_select50", "get_messages_limit50", "select50"),
    ):
        by_round: dict[str, list[float]] = {}
        for api_row, pg_row in zip(result[api_key], pg[script], strict=True):
            same_slot = (api_row["concurrency"], api_row.get("round")) == (
                pg_row["concurrency"],
                pg_row.get("round"),
            )
            assert same_slot, f"unpaired runs: {api_row} / {pg_row}"
            if pg_row.get("tps"):
                by_round.setdefault(str(api_row["concurrency"]), []).append(
                    round(api_row["rps"] / pg_row["tps"], 3)
                )
        out[label] = {c: round(statistics.median(values), 3) for c, values in by_round.items()}
        out[f"{label}_by_round"] = by_round
    post_rps: dict[int, list[float]] = {}
    for row in result["post_messages"]:
        post_rps.setdefault(row["concurrency"], []).append(row["rps"])
    out["post_vs_pgbench_api_tx"] = {
        str(row["concurrency"]): round(
            statistics.median(post_rps[row["concurrency"]]) / row["tps"], 3
        )
        for row in pg["api_tx"]
        if row.get("tps") and row["concurrency"] in post_rps
    }
    return out
