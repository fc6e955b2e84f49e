"""Fan-out benchmark: C websocket clients over R gateway replicas, messages published to Redis.

One run = start (or attach to) the gateways, connect the clients from G generator
processes, prime (one message must reach every client), then one or more measured
windows. In a window the publisher sends `count` messages with consecutive seqs, at a
rate or flat out; every generator counts, per client and seq, what arrived and how late
(`receipt time - ts`, both from the same machine clock); the orchestrator meanwhile takes
/proc CPU time of the servers, the generators, itself and Redis.

In the global room every message reaches every client; with `--rooms N` the clients
are split into N rooms, each message reaches one room, and the rate is per room
(bench/rooms.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import secrets
import subprocess
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Any

from bench.churn import Churn
from bench.common import (
    SHARED_MACHINE_PCT,
    CpuMeter,
    check_clients,
    latency_summary,
    rss_bytes,
    say,
    user_id,
    utc_stamp,
    wait_for_quiet,
)
from bench.eioclient import worker_main
from bench.neighbour import Neighbour
from bench.room_state import (
    ROOM_STATE_PARTS,
    STATE_EVENTS,
    RoomStatePlan,
    counter_deltas,
    ratio,
    scrape_url,
)
from bench.rooms import RoomLayout, room_id
from bench.targets import (
    NODE_DIR,
    Fleet,
    NodePublisher,
    OursPublisher,
    Publisher,
    ReadNotices,
    attach_fleet,
    make_publisher,
    node_version,
    package_version,
    redis_server_pid,
    seed_memberships,
    start_fleet,
)

LATENCY_CEILING_MS = 250.0


@dataclass
class Options:
    target: str
    clients: int
    replicas: int
    rate: float
    duration: float
    burst: int
    sweep: bool
    sweep_factor: float
    sweep_max_steps: int
    gen_procs: int
    connect_concurrency: int
    drain_seconds: float
    redis_url: str
    jwt_secret: str
    allow_10k: bool
    urls: list[str]
    pids: list[int]
    channel: str | None
    quiet_wait: float = 0.0
    via_api: bool = False
    deflate: bool = False
    warmup: float = 0.0
    rooms: int = 0  # 0: the global room; N: N rooms, `rate` is then per room
    idle_seconds: float = 0.0
    room_state: bool = False  # baseline window, then the same load with room state
    churn_per_s: float = 100.0
    typing_period: float = 1.0
    receipt_every: int = 4
    room_state_warmup: float = 15.0
    room_state_split: bool = False  # then each part alone: presence, typing, reads
    neighbour: float = 0.0  # share of one core a busy process takes meanwhile (neighbour.py)

    @property
    def layout(self) -> RoomLayout:
        return RoomLayout(self.rooms, self.clients)

    @property
    def room_state_plan(self) -> RoomStatePlan | None:
        if not self.room_state:
            return None
        return RoomStatePlan(
            self.layout,
            churn_per_s=self.churn_per_s,
            typing_period=self.typing_period,
            receipt_every=self.receipt_every,
        )

    @property
    def total_rate(self) -> float:
        """Messages per second over all rooms."""
        return self.rate * self.layout.slots


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=os.path.dirname(__file__),
        ).stdout.strip()
    except OSError:
        return ""


def realtime_source_hash() -> str:
    """sha1 of services/realtime_service + shared sources: the working tree may differ from HEAD."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "services"
    digest = hashlib.sha1()
    for path in sorted([*root.glob("realtime_service/*.py"), *root.glob("shared/*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def mint_tokens(n: int, secret: str, first: int = 0) -> list[str]:
    """Tokens of the users first .. first+n-1 (bench.common.user_id)."""
    from services.shared.auth import Identity, issue_token

    now = time.time()
    return [
        issue_token(Identity(user_id(i), f"bench {i}"), secret, 3600, now=now)
        for i in range(first, first + n)
    ]


class Generators:
    """The generator processes and their command pipes."""

    def __init__(
        self,
        fleet: Fleet,
        tokens: list[str],
        procs: int,
        concurrency: int,
        deflate: bool = False,
        layout: RoomLayout | None = None,
    ) -> None:
        ctx = mp.get_context("spawn")
        targets = [(s.host, s.port) for s in fleet.servers]
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        per = -(-len(tokens) // procs)
        first = 0
        for _ in range(procs):
            chunk = tokens[first : first + per]
            if not chunk:
                break
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main,
                daemon=True,
                args=(
                    child,
                    targets,
                    chunk,
                    first,
                    max(1, concurrency // procs),
                    30.0,
                    deflate,
                    layout,
                    fleet.target == "node",  # Node has no membership store: room in the query
                ),
            )
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
            first += per
        self.pids: list[int] = []

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        connected = failed = 0
        self.deflate_accepted = 0
        errors: dict[str, int] = {}
        for conn in self.conns:
            if not conn.poll(max(0.1, deadline - time.monotonic())):
                raise SystemExit("generator did not finish connecting in time")
            reply = conn.recv()
            self.pids.append(reply["pid"])
            connected += reply["ready"]["connected"]
            failed += reply["ready"]["failed"]
            self.deflate_accepted += reply["ready"].get("deflate_accepted", 0)
            for k, v in reply["ready"]["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"connected": connected, "failed": failed, "errors": errors}

    def ask(self, command: dict[str, Any], timeout: float = 60.0) -> list[dict[str, Any]]:
        for conn in self.conns:
            conn.send(command)
        replies = []
        for conn in self.conns:
            if not conn.poll(timeout):
                raise SystemExit(f"generator did not answer {command['cmd']}")
            replies.append(conn.recv())
        return replies

    def close(self) -> None:
        try:
            self.ask({"cmd": "close"}, timeout=10)
        except (SystemExit, OSError, EOFError):
            pass
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)


@dataclass
class WindowResult:
    count: int
    rate: float | None
    publish_seconds: float
    first_publish: float
    counts: dict[str, int]
    latencies: list[float]
    first_recv: float
    last_recv: float
    cpu: CpuMeter
    server_names: list[str]
    generator_names: list[str]
    events: dict[str, int]
    typing_sent: int


async def pace(publisher: Publisher, first: int, count: int, rate: float | None) -> float:
    """Publish seqs first..first+count-1 at `rate` msgs/s (None: flat out); returns seconds."""
    start = time.monotonic()
    sent = 0
    if rate is None:
        while sent < count:
            batch = min(200, count - sent)
            await publisher.publish(first + sent, batch)
            sent += batch
        await publisher.flush()
        return time.monotonic() - start
    tick = max(0.005, min(0.05, 1.0 / rate))
    wall_start = time.time()
    publisher.due_at = lambda seq: wall_start + (seq - first) / rate
    try:
        while sent < count:
            due = min(count, int((time.monotonic() - start) * rate) + 1)
            if due > sent:
                await publisher.publish(first + sent, due - sent)
                sent = due
            next_at = start + sent / rate
            wait = min(tick, next_at - time.monotonic())
            await asyncio.sleep(max(0.0, publisher.min_interval, wait))
        await publisher.flush()
    finally:
        publisher.due_at = None
    return time.monotonic() - start


class RssSampler:
    """RSS of each server every `every` seconds while a window runs (a thread: the
    orchestrator's event loop is busy publishing)."""

    def __init__(self, pids: dict[str, int], every: float) -> None:
        self.pids = pids
        self.every = every
        self.samples: dict[str, list[float]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name, pid in self.pids.items():
                rss = rss_bytes(pid)
                if rss:
                    self.samples[name].append(round(rss / 2**20, 1))

    def stop(self) -> dict[str, list[float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


class FanoutRun:
    def __init__(self, opts: Options, target: str) -> None:
        self.opts = opts
        self.target = target
        self.layout = opts.layout
        self.channel = opts.channel or f"bench-{target}-{secrets.token_hex(4)}"
        self.next_seq = 1
        self.fleet: Fleet | None = None
        self.gens: Generators | None = None
        self.publisher: Publisher | None = None
        self.connected = 0
        self.rss_before: dict[str, int | None] = {}
        self.rss_after: dict[str, int | None] = {}
        self.rss_warm: dict[str, int | None] = {}
        self.rss_samples: dict[str, list[float]] = {}
        self.redis_pid = redis_server_pid(opts.redis_url)
        self.busy_before: float | None = None
        self.idle_cpu_pct: float | None = None
        self.priming = False
        self.drain_timed_out = False
        self.plan = opts.room_state_plan
        self.churn: Churn | None = None
        self.neighbour = Neighbour(opts.neighbour)

    # ---- set-up / tear-down ------------------------------------------------------------
    def setup(self) -> dict[str, Any]:
        o = self.opts
        check_clients(o.clients, o.allow_10k, extra=self.plan.churn_pool if self.plan else 0)
        if o.quiet_wait > 0:
            self.busy_before = wait_for_quiet(o.quiet_wait)
        if self.neighbour.duty:
            say(f"a neighbour process spins for {self.neighbour.duty:.0%} of every 10 ms")
            self.neighbour.start()
        if o.urls:
            self.fleet = attach_fleet(self.target, o.urls, o.pids, self.channel)
        else:
            say(f"{self.target}: starting {o.replicas} replica(s) on channel {self.channel}")
            self.fleet = start_fleet(
                self.target, o.replicas, self.channel, o.redis_url, o.jwt_secret
            )
        if self.target == "ours" and not self.layout.global_room:
            say(f"ours: writing the memberships of {o.clients} users in {o.rooms} rooms to Redis")
            extra = (
                {self.plan.churn_user_index(j): self.plan.churn_room(j) for j in range(pool)}
                if self.plan and (pool := self.plan.churn_pool)
                else None
            )
            seed_memberships(o.redis_url, self.channel, self.layout, extra=extra)
        time.sleep(0.5)
        self.rss_before = {s.name: rss_bytes(s.pid) if s.pid else None for s in self.fleet.servers}
        say(
            f"{self.target}: connecting {o.clients} clients from {o.gen_procs} generator "
            "process(es)"
        )
        tokens = mint_tokens(o.clients, o.jwt_secret)
        self.gens = Generators(
            self.fleet, tokens, o.gen_procs, o.connect_concurrency, o.deflate, self.layout
        )
        ready = self.gens.wait_ready(timeout=180)
        self.connected = ready["connected"]
        if not self.connected:
            raise SystemExit(f"{self.target}: no client could connect: {ready['errors']}")
        say(
            f"{self.target}: {ready['connected']} connected, {ready['failed']} failed "
            f"{ready['errors'] or ''}"
        )
        if self.plan is not None and self.plan.churn_pool:
            say(f"{self.target}: starting the churn process ({self.plan.churn_pool} users)")
            self.churn = Churn(
                [(s.host, s.port) for s in self.fleet.servers],
                mint_tokens(self.plan.churn_pool, o.jwt_secret, first=o.clients),
                self.plan.churn_per_s,
                self.plan.hold_seconds,
                self.plan.offline_seconds,
            )
        time.sleep(1.0)
        self.rss_after = {s.name: rss_bytes(s.pid) if s.pid else None for s in self.fleet.servers}
        if o.idle_seconds > 0:
            self.idle_cpu_pct = self.measure_idle(o.idle_seconds)
        return ready

    def measure_idle(self, seconds: float) -> float:
        """The servers' CPU (% of one core, summed) with every client connected and no traffic.

        Heartbeats and connection upkeep cost CPU whether messages flow or not; at a low
        message rate over many connections that share is a visible part of the CPU per
        delivery, so it is reported beside it.
        """
        assert self.fleet is not None
        meter = CpuMeter({s.name: s.pid for s in self.fleet.servers if s.pid})
        meter.start()
        time.sleep(seconds)
        meter.stop()
        return round(sum(meter.pct(name) for name in meter.pids), 1)

    def teardown(self) -> None:
        self.neighbour.stop()
        if self.churn is not None:
            self.churn.close()
        if self.gens is not None:
            self.gens.close()
        if self.publisher is not None:
            try:
                self.loop.run_until_complete(self.publisher.close())
            except Exception as exc:  # noqa: BLE001
                say(f"publisher close failed: {exc!r}")
        if self.fleet is not None:
            self.fleet.stop()
        if not self.opts.channel:  # our own run channel: drop what the servers left in Redis
            try:
                import redis

                client = redis.Redis.from_url(self.opts.redis_url)
                for key in client.scan_iter(match=f"{self.channel}*", count=1000):
                    client.delete(key)
                client.close()
            except Exception as exc:  # noqa: BLE001
                say(f"redis cleanup failed: {exc!r}")

    # ---- windows -----------------------------------------------------------------------
    def window(self, count: int, rate: float | None, drain: float) -> WindowResult:
        assert self.gens is not None and self.fleet is not None
        first = self.next_seq
        self.next_seq += count
        opened = self.gens.ask({"cmd": "window", "base": first, "count": count})
        expected = sum(r["expected"] for r in opened)
        pids: dict[str, int] = {s.name: s.pid for s in self.fleet.servers if s.pid}
        server_names = list(pids)
        gen_names = []
        for i, pid in enumerate(self.gens.pids):
            pids[f"generator-{i + 1}"] = pid
            gen_names.append(f"generator-{i + 1}")
        pids["publisher"] = os.getpid()
        if isinstance(self.publisher, NodePublisher) and self.publisher.pid:
            pids["publisher-node"] = self.publisher.pid
        if self.redis_pid:
            pids["redis"] = self.redis_pid
        if self.churn is not None:
            pids["churn"] = self.churn.pid
        cpu = CpuMeter(pids)

        async def publish() -> tuple[float, float]:
            assert self.publisher is not None
            t0 = time.time()
            seconds = await pace(self.publisher, first, count, rate)
            return t0, seconds

        cpu.start()
        rss = RssSampler({s.name: s.pid for s in self.fleet.servers if s.pid}, every=30.0)
        rss.start()
        t0, seconds = self.loop.run_until_complete(publish())
        end_publish = time.monotonic()
        delivered = 0
        self.drain_timed_out = True
        while time.monotonic() - end_publish < drain:
            delivered = sum(r["delivered"] for r in self.gens.ask({"cmd": "poll"}))
            if delivered >= expected:
                self.drain_timed_out = False
                break
            time.sleep(0.05)
        cpu.stop()
        self.rss_samples = rss.stop()
        replies = self.gens.ask({"cmd": "collect"})
        counts = {
            k: sum(r[k] for r in replies)
            for k in (
                "expected",
                "unique",
                "lost",
                "duplicates",
                "delivered",
                "foreign",
                "misrouted",
                "disconnects",
            )
        }
        latencies: list[float] = []
        for r in replies:
            arr = array("d")
            arr.frombytes(r["latencies"])
            latencies.extend(arr)
        events: dict[str, int] = {}
        for r in replies:
            for name, n in r.get("events", {}).items():
                events[name] = events.get(name, 0) + n
        recv = [r["first_recv"] for r in replies if r["first_recv"]]
        last = [r["last_recv"] for r in replies if r["last_recv"]]
        return WindowResult(
            count,
            rate,
            seconds,
            t0,
            counts,
            latencies,
            min(recv) if recv else 0.0,
            max(last) if last else 0.0,
            cpu,
            server_names,
            gen_names,
            events,
            sum(r.get("typing_sent", 0) for r in replies),
        )

    def summarize(self, w: WindowResult) -> dict[str, Any]:
        c = w.counts
        span = (w.last_recv - w.first_publish) if w.last_recv else 0.0
        offered_rate = (
            w.rate
            if w.rate is not None
            else (w.count / w.publish_seconds if w.publish_seconds else 0.0)
        )
        server_cpu = sum(w.cpu.seconds[n] for n in w.server_names)
        lat = latency_summary(w.latencies)
        gen_pcts = [w.cpu.pct(n) for n in w.generator_names]
        result: dict[str, Any] = {
            "messages": w.count,
            "rate_msgs_per_s": round(offered_rate, 1),
            "publish_seconds": round(w.publish_seconds, 3),
            "deliveries_per_s": {
                "offered": round(offered_rate * self.connected / self.layout.slots, 1),
                "achieved": round(c["unique"] / span, 1) if span > 0 else 0.0,
            },
            "deliveries": c,
            # `lost` counts what had not arrived `drain_seconds` after the last publish.
            "drain_seconds": self.opts.drain_seconds,
            "drain_timed_out": self.drain_timed_out,
            "latency_ms": lat,
            "server_cpu_us_per_delivery": round(server_cpu * 1e6 / c["unique"], 2)
            if c["unique"]
            else None,
            "server_cpu_pct": {n: w.cpu.pct(n) for n in w.server_names},
            "server_cpu_pct_total": round(sum(w.cpu.pct(n) for n in w.server_names), 1),
            "generator_cpu_pct": gen_pcts,
            "publisher_cpu_pct": round(
                w.cpu.pct("publisher")
                + (w.cpu.pct("publisher-node") if "publisher-node" in w.cpu.seconds else 0.0),
                1,
            ),
            "redis_cpu_pct": w.cpu.pct("redis") if "redis" in w.cpu.seconds else None,
            "generator_saturated": any(p > 90.0 for p in gen_pcts),
            "window_seconds": round(w.cpu.wall, 3),
            "machine_cpu_pct": w.cpu.machine_pct(),
            "other_processes_cpu_pct": w.cpu.others_pct(),
            # Compare two targets' latency and CPU only when neither window was shared.
            "shared_machine": w.cpu.others_pct() > SHARED_MACHINE_PCT,
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        result["clean"] = (
            c["lost"] == 0
            and c["duplicates"] == 0
            and c["misrouted"] == 0
            and c["disconnects"] == 0
            and lat["p99_ms"] <= LATENCY_CEILING_MS
        )
        return result

    def prime(self) -> None:
        """One message must reach every client before measuring (subscriptions are live).

        In a rooms load that is one message to every room.
        """
        self.priming = True
        try:
            for attempt in range(3):
                w = self.window(self.layout.slots, None, drain=10.0)
                if w.counts["unique"] >= self.connected:
                    return
                say(f"{self.target}: prime reached {w.counts['unique']}/{self.connected}, retrying")
                time.sleep(1 + attempt)
            say(f"{self.target}: WARNING prime never reached every client")
        finally:
            self.priming = False

    def header(self, mode: str) -> dict[str, Any]:
        assert self.fleet is not None
        o = self.opts
        servers = []
        for s in self.fleet.servers:
            before, after = self.rss_before.get(s.name), self.rss_after.get(s.name)
            warm = self.rss_warm.get(s.name)
            servers.append(
                {
                    "name": s.name,
                    "pid": s.pid,
                    "port": s.port,
                    "rss_mb_idle": round(before / 2**20, 1) if before else None,
                    "rss_mb_connected": round(after / 2**20, 1) if after else None,
                }
                | ({"rss_mb_after_warmup": round(warm / 2**20, 1)} if warm else {})
            )
        deltas = [
            (self.rss_after[n] or 0) - (self.rss_before[n] or 0)
            for n in self.rss_before
            if self.rss_before[n] and self.rss_after.get(n)
        ]
        header: dict[str, Any] = {
            "bench": "fanout" if self.layout.global_room else "rooms",
            "mode": mode,
            "target": self.target,
            "at": utc_stamp(),
            "commit": git_commit(),
            "source_sha1": realtime_source_hash(),
            "cpus": os.cpu_count(),
            "clients": o.clients,
            "connected": self.connected,
        }
        if not self.layout.global_room:
            header |= {
                "rooms": o.rooms,
                "room_size": round(o.clients / o.rooms, 1),
                "rate_per_room_msgs_per_s": o.rate,
            }
        header |= {
            "replicas": len(self.fleet.servers),
            "generator_procs": len(self.gens.procs) if self.gens else 0,
            "client_offers_deflate": o.deflate,
            "clients_with_deflate": self.gens.deflate_accepted if self.gens else 0,
            "channel": self.channel,
            "servers": servers,
            "machine_busy_pct_before": self.busy_before,
            "neighbour_duty": self.neighbour.duty,
            "server_cpu_pct_idle": self.idle_cpu_pct,
            "mem_per_connection_kb": round(sum(deltas) / self.connected / 1024, 1)
            if deltas and self.connected
            else None,
        }
        if self.target == "node":
            header["versions"] = {
                "node": node_version(),
                "socket.io": package_version(NODE_DIR / "node_modules" / "socket.io"),
                "@socket.io/redis-adapter": package_version(
                    NODE_DIR / "node_modules" / "@socket.io" / "redis-adapter"
                ),
                "@socket.io/redis-emitter": package_version(
                    NODE_DIR / "node_modules" / "@socket.io" / "redis-emitter"
                ),
            }
        return header

    def end_rss(self, result: dict[str, Any]) -> None:
        """RSS at the end, and memory per connection from it (what traffic added)."""
        assert self.fleet is not None
        grown = []
        for s in result["servers"]:
            pid = s["pid"]
            rss = rss_bytes(pid) if pid else None
            s["rss_mb_end"] = round(rss / 2**20, 1) if rss else None
            idle = self.rss_before.get(s["name"])
            if rss and idle:
                grown.append(rss - idle)
            if self.rss_samples.get(s["name"]):
                s["rss_mb_every_30s"] = self.rss_samples[s["name"]]
        if grown and self.connected:
            result["mem_per_connection_kb_end"] = round(sum(grown) / self.connected / 1024, 1)

    # ---- modes -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        o = self.opts
        self.loop = asyncio.new_event_loop()
        try:
            self.setup()
            self.publisher = make_publisher(
                self.target,
                o.redis_url,
                self.channel,
                via_api=o.via_api,
                jwt_secret=o.jwt_secret,
                layout=self.layout,
            )
            self.loop.run_until_complete(self.publisher.start())
            self.prime()
            if o.room_state:
                result = self.header("room-state") | self.room_state_pair()
            elif o.sweep:
                result = self.header("sweep") | self.sweep()
            elif o.burst:
                say(f"{self.target}: burst of {o.burst} messages to {self.connected} clients")
                w = self.window(o.burst, None, o.drain_seconds)
                result = self.header("burst") | self.summarize(w)
            else:
                warmup = self.warm_up() if o.warmup > 0 else None
                count = max(1, int(o.total_rate * o.duration))
                say(
                    f"{self.target}: {o.total_rate} msg/s for {o.duration}s to "
                    f"{self.connected} clients{self.rooms_text()}"
                )
                w = self.window(count, o.total_rate, o.drain_seconds)
                result = self.header("rate") | {"duration_s": o.duration} | self.summarize(w)
                if warmup is not None:
                    result["warmup"] = warmup
            self.end_rss(result)
            return result
        finally:
            self.teardown()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

    # ---- room state (issue 14) -------------------------------------------------------
    def gateway_counters(self) -> dict[str, float]:
        """The room-state counters of every gateway's /metrics, summed over the replicas."""
        assert self.fleet is not None
        total: dict[str, float] = {}
        for server in self.fleet.servers:
            try:
                counters = scrape_url(f"{server.url}/metrics")
            except OSError as exc:
                say(f"{server.name}: /metrics unreadable: {exc!r}")
                continue
            for key, value in counters.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def measured_window(self, label: str) -> dict[str, Any]:
        """A warm-up window (not reported), then the measured one, with what the clients
        and gateways counted besides the messages."""
        o = self.opts
        rate = o.total_rate
        if o.room_state_warmup > 0:
            say(f"{self.target}: {label}: warm-up, {rate} msg/s for {o.room_state_warmup}s")
            self.window(max(1, int(rate * o.room_state_warmup)), rate, o.drain_seconds)
        say(f"{self.target}: {label}: {rate} msg/s for {o.duration}s{self.rooms_text()}")
        churn_before = self.churn.ask({"cmd": "stats"}) if self.churn else None
        counters_before = self.gateway_counters()
        w = self.window(max(1, int(rate * o.duration)), rate, o.drain_seconds)
        counters = counter_deltas(counters_before, self.gateway_counters())
        s = self.summarize(w)
        seconds = w.cpu.wall or 1.0
        s["events_received"] = {
            name: {"count": w.events.get(name, 0), "per_s": round(w.events.get(name, 0) / seconds)}
            for name in STATE_EVENTS
        } | {k: v for k, v in w.events.items() if k not in STATE_EVENTS}
        s["gateway_counters"] = counters
        s["typing_sent"] = w.typing_sent
        if self.churn is not None and churn_before is not None:
            s["churn"] = self.churn_summary(churn_before, self.churn.ask({"cmd": "stats"}), w)
        return s

    def churn_summary(
        self, before: dict[str, Any], after: dict[str, Any], w: WindowResult
    ) -> dict[str, Any]:
        seconds = w.cpu.wall or 1.0
        delta = {k: after[k] - before[k] for k in ("connects", "failed", "disconnects", "starved")}
        connect_ms = array("d")
        connect_ms.frombytes(after["connect_ms"])
        done = len(before["connect_ms"]) // connect_ms.itemsize  # connects before the window
        latency = latency_summary([v / 1000.0 for v in connect_ms[done:]])
        events = {
            k: v - before["events"].get(k, 0)
            for k, v in after["events"].items()
            if v - before["events"].get(k, 0)
        }
        return delta | {
            "connects_per_s": round(delta["connects"] / seconds, 1),
            "disconnects_per_s": round(delta["disconnects"] / seconds, 1),
            "online_at_end": after["online"],
            "connect_ms": latency,
            "events_received": events,
            "cpu_pct": w.cpu.pct("churn"),
        }

    def start_room_state(self, parts: tuple[str, ...] = ROOM_STATE_PARTS) -> None:
        """Churn, typing and read notices (those in `parts`) on, on top of the message load."""
        assert self.plan is not None and self.gens is not None
        if "presence" in parts and self.churn is not None:
            self.churn.ask({"cmd": "start"})
        if "typing" in parts:
            typists = [[self.plan.typist(r), room_id(r)] for r in range(self.opts.rooms)]
            self.gens.ask({"cmd": "typing", "period": self.plan.typing_period, "typists": typists})
        if "reads" in parts and isinstance(self.publisher, OursPublisher):
            self.publisher.reads = ReadNotices(self.plan)

    def stop_room_state(self) -> None:
        assert self.gens is not None
        if isinstance(self.publisher, OursPublisher):
            self.publisher.reads = None
        self.gens.ask({"cmd": "typing", "period": 0})
        if self.churn is not None:
            self.churn.ask({"cmd": "stop"})

    def room_state_pair(self) -> dict[str, Any]:
        """The rooms load alone, then the same load with presence, typing and read markers.

        Both windows run on the same gateways with the same connected clients, one after
        the other, each after a warm-up of the same length (with room state on, the churn
        needs hold + grace + a sweep to reach its steady state of connects and offline
        changes).
        """
        assert self.plan is not None
        baseline = self.measured_window("baseline")
        self.start_room_state()
        try:
            with_state = self.measured_window("with room state")
        finally:
            self.stop_room_state()
        each_alone: dict[str, Any] = {}
        for part in ROOM_STATE_PARTS if self.opts.room_state_split else ():
            self.start_room_state((part,))
            try:
                alone = self.measured_window(f"{part} alone")
            finally:
                self.stop_room_state()
            alone["p99_ratio_to_baseline"] = ratio(
                alone["latency_ms"]["p99_ms"], baseline["latency_ms"]["p99_ms"]
            )
            alone["server_cpu_pct_total_ratio_to_baseline"] = ratio(
                alone["server_cpu_pct_total"], baseline["server_cpu_pct_total"]
            )
            each_alone[part] = alone
        layout = self.plan.layout
        b, r = baseline, with_state
        p99_b, p99_r = b["latency_ms"]["p99_ms"], r["latency_ms"]["p99_ms"]
        return {
            "duration_s": self.opts.duration,
            "warmup_s": self.opts.room_state_warmup,
            "room_state_load": {
                "churn_connects_per_s": self.plan.churn_per_s,
                "churn_disconnects_per_s": self.plan.churn_per_s,
                "churn_pool": self.plan.churn_pool,
                "churn_hold_s": self.plan.hold_seconds,
                "churn_offline_s": self.plan.offline_seconds,
                "typing_period_s": self.plan.typing_period,
                "typists": layout.rooms,
                "read_notices": "one per message, published on <prefix>:reads",
                "receipt_rooms": sum(1 for x in range(layout.rooms) if self.plan.receipts_on(x)),
            },
            "baseline": baseline,
            "with_room_state": with_state,
            **({"each_alone": each_alone} if each_alone else {}),
            "comparison": {
                "p50_ratio": ratio(r["latency_ms"]["p50_ms"], b["latency_ms"]["p50_ms"]),
                "p99_ratio": ratio(p99_r, p99_b),
                "max_ratio": ratio(r["latency_ms"]["max_ms"], b["latency_ms"]["max_ms"]),
                "server_cpu_pct_total_ratio": ratio(
                    r["server_cpu_pct_total"], b["server_cpu_pct_total"]
                ),
                "server_cpu_us_per_delivery_ratio": ratio(
                    r["server_cpu_us_per_delivery"], b["server_cpu_us_per_delivery"]
                ),
                "p99_doubled": bool(p99_b and p99_r >= 2 * p99_b),
            },
        }

    def rooms_text(self) -> str:
        if self.layout.global_room:
            return ""
        return f" in {self.opts.rooms} rooms ({self.opts.rate} msg/s per room)"

    def warm_up(self) -> dict[str, Any]:
        """The same load for `--warmup` seconds before measuring; RSS is taken after it.

        Buffers, caches and allocator pools settle under load; RSS growth after this
        point is what would show a leak.
        """
        assert self.fleet is not None
        o = self.opts
        say(f"{self.target}: warm-up, {o.total_rate} msg/s for {o.warmup}s")
        s = self.summarize(
            self.window(max(1, int(o.total_rate * o.warmup)), o.total_rate, o.drain_seconds)
        )
        self.rss_warm = {
            srv.name: rss_bytes(srv.pid) if srv.pid else None for srv in self.fleet.servers
        }
        return {"seconds": o.warmup, "deliveries": s["deliveries"], "latency_ms": s["latency_ms"]}

    def sweep(self) -> dict[str, Any]:
        o = self.opts
        rate = o.total_rate
        steps: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        for _ in range(o.sweep_max_steps):
            count = max(1, int(rate * o.duration))
            say(
                f"{self.target}: sweep step {rate:.0f} msg/s x {self.connected} clients for "
                f"{o.duration}s"
            )
            s = self.summarize(self.window(count, rate, o.drain_seconds))
            pace_ok = s["publish_seconds"] <= o.duration * 1.1
            s["clean"] = s["clean"] and pace_ok
            steps.append(
                {
                    k: s[k]
                    for k in (
                        "rate_msgs_per_s",
                        "deliveries_per_s",
                        "latency_ms",
                        "deliveries",
                        "server_cpu_us_per_delivery",
                        "server_cpu_pct_total",
                        "generator_cpu_pct",
                        "publisher_cpu_pct",
                        "redis_cpu_pct",
                        "other_processes_cpu_pct",
                        "clean",
                    )
                }
            )
            say(
                f"  -> achieved {s['deliveries_per_s']['achieved']}/s p99 "
                f"{s['latency_ms']['p99_ms']} ms "
                f"lost {s['deliveries']['lost']} clean={s['clean']}"
            )
            if not s["clean"]:
                break
            best = steps[-1]
            rate *= o.sweep_factor
            time.sleep(1.0)  # let queues settle between steps
        return {
            "step_seconds": o.duration,
            "steps": steps,
            "max_clean_rate_msgs_per_s": best["rate_msgs_per_s"] if best else None,
            "max_clean_deliveries_per_s": best["deliveries_per_s"]["achieved"] if best else None,
            "criteria": f"no loss, no duplicate, no disconnect, p99 <= {LATENCY_CEILING_MS} ms, "
            "publisher kept pace",
        }


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """ours relative to each reference (>1 means ours is higher)."""
    out: dict[str, Any] = {}
    ours = results.get("ours")
    if not ours:
        return out
    for ref in ("stock", "node"):
        other = results.get(ref)
        if not other:
            continue

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 3) if a and b else None

        out[f"ours_vs_{ref}"] = {
            "achieved_deliveries_per_s": ratio(
                ours.get("deliveries_per_s", {}).get("achieved"),
                other.get("deliveries_per_s", {}).get("achieved"),
            ),
            "server_cpu_us_per_delivery": ratio(
                ours.get("server_cpu_us_per_delivery"), other.get("server_cpu_us_per_delivery")
            ),
            "p99_latency": ratio(
                ours.get("latency_ms", {}).get("p99_ms"), other.get("latency_ms", {}).get("p99_ms")
            ),
            "mem_per_connection": ratio(
                ours.get("mem_per_connection_kb"), other.get("mem_per_connection_kb")
            ),
            "max_clean_deliveries_per_s": ratio(
                ours.get("max_clean_deliveries_per_s"), other.get("max_clean_deliveries_per_s")
            ),
        }
    return out
