"""`python -m bench rest`: REST throughput/latency next to pgbench doing the same SQL.

Starts a LocalStack (stack/) on free ports against a throw-away database, signs one
user up, then for each concurrency runs `POST /messages` and `GET /messages?limit=50`
straight at the API (no load balancer) for --duration seconds each. Then stops the
stack and runs pgbench on the same database and table at the same concurrencies with
three custom scripts:

  insert   the single-row INSERT alone (the floor of what a write can cost)
  api_tx   the statement POST /messages runs for a batch of one: chat_store_messages
           (order lock, INSERT .. RETURNING, duplicate lookup, NOTIFY)
  select50 the newest 50 rows (what GET /messages?limit=50 reads)

The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import secrets
import shutil
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
        raise SystemExit("pgbench not found: apt-get install postgresql-client (or postgresql-contrib)")
    return candidates[-1]


def postgres_ticks() -> int:
    """CPU ticks of every process named postgres (server and backends)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        total += cpu_ticks(int(entry)) or 0
    return total


async def http_load(base: str, token: str, method: str, concurrency: int, duration: float) -> dict[str, Any]:
    """`concurrency` keep-alive connections, one request in flight each, for `duration` s."""
    address = urlsplit(base)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    headers = {"Authorization": f"Bearer {token}"}
    if method == "POST":
        make = post_json_request(address.netloc, "/messages", headers,
                                 lambda: {"id": str(uuid.uuid4()), "text": TEXT})
    else:
        make = get_request(address.netloc, "/messages?limit=50", headers)
    result, elapsed = await run_load(host, port, make, concurrency, duration)
    ok = sum(n for status, n in result.statuses.items() if 200 <= status < 300)
    return {"requests": len(result.latencies), "ok": ok, "connection_errors": result.errors,
            "statuses": {str(k): v for k, v in result.statuses.items()},
            "rps": round(ok / elapsed, 1), "latency_ms": latency_summary(result.latencies),
            "seconds": round(elapsed, 2)}


async def sign_up(base: str) -> tuple[str, str]:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/signup", json={"name": "bench", "email": email,
                                                         "password": "bench-password-123"}) as r:
            if r.status != 201:
                raise SystemExit(f"signup failed: {r.status} {await r.text()}")
        async with session.post(f"{base}/signin", json={"email": email, "password": "bench-password-123"}) as r:
            body = await r.json()
            if r.status != 200:
                raise SystemExit(f"signin failed: {r.status} {body}")
            return body["token"], body["userId"]


def run_http(stack: Any, concurrencies: list[int], duration: float) -> tuple[dict[str, Any], str]:
    base = stack.api_url
    token, user_id = asyncio.run(sign_up(base))
    api_pid = stack.api.pid
    out: dict[str, Any] = {}
    for method, label in (("POST", "post_messages"), ("GET", "get_messages_limit50")):
        rows = []
        for c in concurrencies:
            say(f"rest: {method} at concurrency {c} for {duration}s")
            api0, pg0, me0, t0 = cpu_ticks(api_pid) or 0, postgres_ticks(), cpu_ticks(os.getpid()) or 0, time.monotonic()
            m0 = machine_busy_ticks()
            row = uvloop.run(http_load(base, token, method, c, duration))
            wall = time.monotonic() - t0
            row["concurrency"] = c
            row["api_cpu_pct"] = round(100 * ((cpu_ticks(api_pid) or 0) - api0) / CLK_TCK / wall, 1)
            row["postgres_cpu_pct"] = round(100 * (postgres_ticks() - pg0) / CLK_TCK / wall, 1)
            row["generator_cpu_pct"] = round(100 * ((cpu_ticks(os.getpid()) or 0) - me0) / CLK_TCK / wall, 1)
            row["machine_cpu_pct"] = round(100 * (machine_busy_ticks() - m0) / CLK_TCK / wall, 1)
            rows.append(row)
            say(f"  -> {row['rps']} req/s p50 {row['latency_ms']['p50_ms']} ms p99 {row['latency_ms']['p99_ms']} ms")
        out[label] = rows
    return out, user_id


def pgbench_scripts(directory: Path, owner: str) -> dict[str, Path]:
    from services.api_service.db.messages import MESSAGE_ORDER_LOCK_KEY

    text = TEXT.replace("'", "''")
    cid = "md5(:r::text || ':' || :client_id::text)::uuid"
    scripts = {
        "insert": (
            "INSERT INTO messages (client_id, owner_id, user_name, text) "
            f"VALUES (gen_random_uuid(), '{owner}', 'bench', '{text}');\n"
        ),
        "api_tx": (
            "\\set r random(1, 9000000000000000000)\n"
            f"SELECT * FROM chat_store_messages(ARRAY[{cid}], ARRAY['{owner}'::uuid], "
            f"ARRAY['bench'], ARRAY['{text}'], {MESSAGE_ORDER_LOCK_KEY}, 'bench_not_the_relay');\n"
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


def run_pgbench(database_url: str, owner: str, concurrencies: list[int], duration: float) -> dict[str, Any]:
    parts = urlsplit(database_url)
    binary = pgbench_binary()
    out: dict[str, Any] = {"binary": binary}
    with tempfile.TemporaryDirectory() as tmp:
        scripts = pgbench_scripts(Path(tmp), owner)
        for name, path in scripts.items():
            rows = []
            for c in concurrencies:
                say(f"pgbench: {name} at -c {c} for {duration}s")
                argv = [binary, "-n", "-f", str(path), "-c", str(c), "-j", str(min(c, 2)),
                        "-T", str(int(duration)), "-h", parts.hostname or "127.0.0.1",
                        "-p", str(parts.port or 5432), "-U", parts.username or "postgres",
                        parts.path.lstrip("/")]
                env = dict(os.environ)
                if parts.password:
                    env["PGPASSWORD"] = parts.password
                done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                                      timeout=duration + 60)
                if done.returncode != 0:
                    rows.append({"concurrency": c, "error": done.stderr.strip()[-500:]})
                    continue
                row = parse_pgbench(done.stdout) | {"concurrency": c}
                rows.append(row)
                say(f"  -> {row.get('tps')} tps avg {row.get('latency_avg_ms')} ms")
            out[name] = rows
    return out


def main(argv: list[str], emit: Callable[[dict[str, Any], bool], None]) -> int:
    from stack import LocalStack, StackConfig, infra

    parser = argparse.ArgumentParser(prog="python -m bench rest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, action="append", default=None,
                        help="repeat; default 1, 8, 32")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per step (<= 120)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", infra.DEFAULT_DATABASE_URL),
                        help="server to use; a throw-away database is created next to it")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", infra.DEFAULT_REDIS_URL))
    parser.add_argument("--no-pgbench", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="wait up to this many seconds for other work on the machine to stop")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    concurrencies = args.concurrency or [1, 8, 32]
    if max(concurrencies) > 256 or args.duration <= 0 or args.duration > 120:
        raise SystemExit("concurrency is capped at 256 and --duration at 120 s")
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
        db_url, args.redis_url, gateways=2, log_dir=REPO_ROOT / ".run" / "bench-logs" / "rest",
        extra_env={"JWT_SECRET": DEFAULT_SECRET, "SOCKETIO_CHANNEL": channel, "LOG_LEVEL": "WARNING",
                   "RATE_LIMIT_MESSAGES_PER_MINUTE": "0", "APP_ENV": "development"},
    )
    result: dict[str, Any] = {"bench": "rest", "at": utc_stamp(), "cpus": os.cpu_count(),
                              "duration_s": args.duration, "concurrency": concurrencies,
                              "note": "HTTP straight to one API process (no LB); rate limit off; "
                                      "one generator process (bench/httpload.py, raw keep-alive HTTP/1.1)",
                              "machine_busy_pct_before": busy}
    try:
        stack = LocalStack(config)
        stack.start()
        try:
            http, owner = run_http(stack, concurrencies, args.duration)
            result.update(http)
        finally:
            stack.stop()
        if not args.no_pgbench:
            result["pgbench"] = run_pgbench(db_url, owner, concurrencies, args.duration)
        result["ratios"] = rest_ratios(result)
    finally:
        try:
            infra.drop_database(db_url)
            import redis

            client = redis.Redis.from_url(args.redis_url)
            client.delete(f"{channel}:history")
            client.close()
        except Exception as exc:  # noqa: BLE001
            say(f"cleanup failed: {exc!r}")
    emit(result, not args.no_save)
    return 0


def rest_ratios(result: dict[str, Any]) -> dict[str, Any]:
    """API requests/s as a fraction of pgbench tps for the matching script."""
    pg = result.get("pgbench", {})
    out: dict[str, Any] = {}
    for label, script in (("post_vs_pgbench_api_tx", "api_tx"), ("post_vs_pgbench_insert", "insert"),
                          ("get_vs_pgbench_select50", "select50")):
        api_rows = result["post_messages" if label.startswith("post") else "get_messages_limit50"]
        pg_rows = {r["concurrency"]: r for r in pg.get(script, [])}
        out[label] = {str(r["concurrency"]): round(r["rps"] / pg_rows[r["concurrency"]]["tps"], 3)
                      for r in api_rows if pg_rows.get(r["concurrency"], {}).get("tps")}
    return out
