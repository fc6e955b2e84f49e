"""`python -m bench connects`: a gateway's CPU for one client connecting and leaving.

Presence churn (issue 14's room-state load) and a replica's clients reconnecting to the
others after it died both cost the surviving gateways a connect and a disconnect per
client, whatever the messages. This measures that cost alone: one gateway, no message
traffic, and clients that connect (WebSocket upgrade, Engine.IO open, Socket.IO connect
with `auth`, the server's connect acknowledgement) and close their socket at once,
`--concurrency` of them at a time, `--cycles` per round.

* `ours`: rooms-aware clients (`auth: {token, rooms: true}`), each user a member of one
  room (membership hashes seeded as the relay writes them). A connect is the admission
  (cap, revocation, presence, memberships in one Lua call); a disconnect is the lease
  release and, once `OFFLINE_GRACE_SECONDS` have passed, the presence sweep taking the
  user offline; every presence change also comes back to the gateway on its channel.
  Each user connects once before the measured rounds, so the tokens are ones the
  gateway has verified before (a reconnect; `bench upkeep` measures a first one).
* `node`: bench/node/server.js (Socket.IO 4.8 with the Redis adapter; no
  authentication, no presence).

The gateway's CPU (user and system time from /proc) is read before a round and again
once everything a round set off is over (the offline changes included, `--settle`
seconds later); the CPU it spends idle over as long (its pings, renewals, sweeps) is
measured right after and taken off. Reported per cycle (one connect plus one
disconnect), median of `--rounds`, with the client's connect latency. Prints one JSON
line (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.churn import ChurnProcess
from bench.common import CLK_TCK, cpu_user_system_ticks, redis_and_save_arguments, say
from bench.fanout import git_commit, mint_tokens
from bench.rooms import RoomLayout
from bench.targets import Server, seed_memberships, start_fleet
from services.shared.redis_contract import RedisKeys

SECRET = "connects-bench-" + "s" * 32
TARGETS = ("ours", "node")
# The gateway's presence timings during the run: an offline change comes this soon after
# a disconnect (the defaults would make every round wait 6 s for it).
GATEWAY_ENV = {"OFFLINE_GRACE_SECONDS": "1", "PRESENCE_SWEEP_SECONDS": "0.5"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench connects", description=__doc__)
    p.add_argument("--target", default="all", choices=[*TARGETS, "all"])
    p.add_argument("--cycles", type=int, default=2000, help="connect + disconnect per round")
    p.add_argument("--concurrency", type=int, default=20, help="clients connecting at once")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--settle", type=float, default=3.0, help="seconds after a round")
    return redis_and_save_arguments(p)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of the gateway `pid` so far."""
    ticks = cpu_user_system_ticks(pid)
    if ticks is None:
        raise SystemExit(f"connects: the gateway (pid {pid}) is gone; see .run/bench-logs")
    return ticks[0] / CLK_TCK, ticks[1] / CLK_TCK


class Cycler(ChurnProcess):
    """Connects users and closes each socket as soon as its connect was acknowledged."""

    def __init__(self, server: Server, tokens: list[str], rooms: bool) -> None:
        super().__init__([(server.host, server.port)], tokens, 0.0, 0.0, 0.0)
        self.rooms = rooms

    def auth(self, token: str) -> dict[str, Any]:
        return {"token": token, "rooms": True} if self.rooms else {"token": token}

    async def cycle(self, users: range, concurrency: int) -> None:
        """Connect (and close) each of `users`, `concurrency` at a time."""

        async def lane(first: int) -> None:
            for j in range(first, users.stop, concurrency):
                await self.connect(j)  # not running: closed once connected

        await asyncio.gather(*(lane(users.start + k) for k in range(concurrency)))


async def measure(target: str, args: argparse.Namespace) -> dict[str, Any]:
    channel = f"bench-connects-{uuid.uuid4().hex[:8]}"
    layout = RoomLayout(rooms=max(1, args.cycles // 10), clients=args.cycles)
    if target == "ours":
        seed_memberships(args.redis_url, channel, layout)
    fleet = start_fleet(target, 1, channel, args.redis_url, SECRET, extra_env=GATEWAY_ENV)
    try:
        server = fleet.servers[0]
        assert server.pid is not None
        cycler = Cycler(server, mint_tokens(args.cycles, SECRET), rooms=target == "ours")
        say(f"connects: {target}: every user once (warm-up)")
        await cycler.cycle(range(args.cycles), args.concurrency)
        await asyncio.sleep(args.settle)
        rounds = [await one_round(cycler, server.pid, args) for _ in range(args.rounds)]
    finally:
        fleet.stop()
        await delete_keys(args.redis_url, channel)
    median = statistics.median
    return {
        "cpu_us_per_cycle": round(median(r["cpu_us"] for r in rounds), 1),
        "user_us_per_cycle": round(median(r["user_us"] for r in rounds), 1),
        "sys_us_per_cycle": round(median(r["sys_us"] for r in rounds), 1),
        "connect_ms_p50": round(median(r["connect_ms_p50"] for r in rounds), 2),
        "failed": sum(r["failed"] for r in rounds),
        "rounds": rounds,
    }


async def one_round(cycler: Cycler, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """CPU per cycle of one round of `args.cycles` cycles, idle CPU taken off."""
    connects, failed, latencies = cycler.connects, cycler.failed, len(cycler.connect_ms)
    user0, sys0 = cpu_seconds(pid)
    started = time.monotonic()
    await cycler.cycle(range(args.cycles), args.concurrency)
    await asyncio.sleep(args.settle)
    user1, sys1 = cpu_seconds(pid)
    elapsed = time.monotonic() - started
    await asyncio.sleep(args.settle)  # the same gateway with nothing to do, as long
    user2, sys2 = cpu_seconds(pid)
    idle = elapsed / args.settle
    done = cycler.connects - connects
    if not done:
        raise SystemExit("connects: no client connected; see .run/bench-logs")
    user = (user1 - user0 - (user2 - user1) * idle) / done * 1e6
    system = (sys1 - sys0 - (sys2 - sys1) * idle) / done * 1e6
    say(f"  {done} cycles in {elapsed - args.settle:.1f}s: {user + system:.0f} µs of CPU each")
    return {
        "cycles": done,
        "failed": cycler.failed - failed,
        "cpu_us": round(user + system, 1),
        "user_us": round(user, 1),
        "sys_us": round(system, 1),
        "connect_ms_p50": round(statistics.median(cycler.connect_ms[latencies:]), 2),
    }


async def delete_keys(redis_url: str, channel: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=RedisKeys(channel).pattern):
            await client.delete(key)
    finally:
        await client.aclose()


def main(argv: list[str], emit: Any) -> int:
    args = parser().parse_args(argv)
    if not 10 <= args.cycles <= 20_000 or not 1 <= args.concurrency <= 200:
        raise SystemExit("--cycles must be in [10, 20000], --concurrency in [1, 200]")
    if not 1 <= args.rounds <= 20:
        raise SystemExit("--rounds must be in [1, 20]")
    targets = TARGETS if args.target == "all" else (args.target,)
    result: dict[str, Any] = {
        "bench": "connects",
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "cycles": args.cycles,
        "concurrency": args.concurrency,
    }
    for target in targets:
        result[target] = asyncio.run(measure(target, args))
    if "ours" in result and "node" in result:
        result["ours_over_node"] = round(
            result["ours"]["cpu_us_per_cycle"] / result["node"]["cpu_us_per_cycle"], 2
        )
    emit(result, not args.no_save)
    return 0
