"""`python -m bench upkeep`: a gateway's CPU for the work it does per connection, not per message.

Two costs that an idle or churning replica pays and the fan-out runs only see blurred:

* **lease renewal**: one round of `UserConnections._renew` over `--connections` leases
  (a replica renews every third of `CONNECTION_LEASE_SECONDS`), against the real Redis,
  under a throw-away key prefix that is deleted afterwards;
* **token verification at connect**: `TokenVerifier.verify` on a token it has not seen
  (PyJWT's checks) and on one it has (a reconnect with the same token).

CPU is this process's own (`time.process_time`), so Redis's share of a renewal is not in
it; the median of `--rounds` rounds is reported. Prints one JSON line (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from bench.common import redis_and_save_arguments, say
from bench.fanout import git_commit, mint_tokens
from services.realtime_service.connections import UserConnections
from services.shared.auth import TokenVerifier
from services.shared.redis_contract import RedisKeys

LEASE_SECONDS = 15.0
TOKEN_SECRET = "upkeep-bench-" + "s" * 32


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench upkeep", description=__doc__)
    p.add_argument("--connections", type=int, default=5000, help="leases renewed per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--tokens", type=int, default=2000, help="tokens verified per measurement")
    return redis_and_save_arguments(p)


async def renewal_cpu_ms(redis_url: str, connections: int, rounds: int) -> dict[str, float]:
    """Median CPU and wall time of one renewal round over `connections` leases."""
    client = aioredis.Redis.from_url(redis_url)
    keys = RedisKeys(f"bench-upkeep-{uuid.uuid4().hex}")
    leases = UserConnections(client, keys, cap=0, lease_seconds=LEASE_SECONDS)
    try:
        for i in range(connections):
            await leases.admit(str(uuid.uuid4()), f"bench-sid-{i}")
        await leases._renew()  # the scripts are loaded, the keys exist
        cpu, wall = [], []
        for _ in range(rounds):
            started_cpu, started = time.process_time(), time.perf_counter()
            await leases._renew()
            cpu.append((time.process_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
    finally:
        async for key in client.scan_iter(match=keys.pattern):
            await client.delete(key)
        await client.aclose()
    median = statistics.median
    return {"cpu_ms": round(median(cpu), 2), "wall_ms": round(median(wall), 2)}


def per_call_us(call: Callable[[str], Any], tokens: list[str]) -> float:
    """CPU microseconds per call of `call` over `tokens`."""
    started = time.process_time()
    for token in tokens:
        call(token)
    return round((time.process_time() - started) / len(tokens) * 1e6, 2)


def token_cpu_us(count: int) -> dict[str, float]:
    """CPU per verification: a token seen for the first time, then the same tokens again."""
    tokens = mint_tokens(count, TOKEN_SECRET)
    verifier = TokenVerifier(TOKEN_SECRET, max_entries=count)
    return {
        "first_us": per_call_us(verifier.verify, tokens),
        "again_us": per_call_us(verifier.verify, tokens),
    }


def main(argv: list[str], emit: Any) -> int:
    args = parser().parse_args(argv)
    if not 1 <= args.connections <= 100_000 or not 1 <= args.rounds <= 50:
        raise SystemExit("--connections must be in [1, 100000], --rounds in [1, 50]")
    if not 1 <= args.tokens <= 100_000:
        raise SystemExit("--tokens must be in [1, 100000]")
    say(f"upkeep: renewing {args.connections} leases, {args.rounds} rounds")
    renewal = asyncio.run(renewal_cpu_ms(args.redis_url, args.connections, args.rounds))
    tokens = token_cpu_us(args.tokens)
    result = {
        "bench": "upkeep",
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "connections": args.connections,
        "renewal_round": renewal,
        "renewal_cpu_us_per_connection": round(renewal["cpu_ms"] * 1000 / args.connections, 2),
        "token_verify": tokens,
    }
    emit(result, not args.no_save)
    return 0
