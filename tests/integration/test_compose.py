"""docker-compose.yml: the topology it declares, and the running compose stack itself.

The first tests read `docker-compose config` (no engine needed). The rest run only
inside `make compose-test` (scripts/compose_test.sh), which starts the compose stack with
three gateway replicas and names it in `CHAT_COMPOSE_PROJECT`: clients on every replica
(reached at their container addresses) and through the load balancer, and the no-loss
checks with a gateway crashed (restarted by its restart policy) and Redis restarted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from stack import REPO_ROOT
from tests.helpers.delivery import Writer, report
from tests.helpers.rest import Api, sign_up_and_in
from tests.helpers.sockets import ChatSocket, SocketFactory, by_owner
from tests.helpers.stack import ChatStack

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# What a developer shell or `make compose-test` may set; the defaults are what is checked.
OVERRIDES = {
    "LB_PORT",
    "COMPOSE_FILE",
    "JWT_SECRET",
    "LB_ADDRESS",
    "CHAT_SUBNET",
    "CHAT_IMAGE",
    "POSTGRES_IMAGE",
    "REDIS_IMAGE",
    "HAPROXY_IMAGE",
    "PYTHON_IMAGE",
    "NODE_IMAGE",
}


def _published_ports(service: dict) -> list[int]:
    """Host ports of a service in `docker-compose config` output (long or short syntax)."""
    published: list[int] = []
    for entry in service.get("ports", []) or []:
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                published.append(int(entry["published"]))
        else:  # "HOST:CONTAINER[/proto]" or "IP:HOST:CONTAINER"
            parts = str(entry).split("/")[0].split(":")
            if len(parts) >= 2 and parts[-2]:
                published.append(int(parts[-2]))
    return published


@pytest.fixture(scope="module")
async def compose_config() -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the `test` extra")
    # The defaults are what is checked: drop overrides a developer shell may carry.
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-f",
        str(COMPOSE_FILE),
        "config",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"docker-compose config failed:\n{err.decode()}"
    return yaml.safe_load(out)


async def test_compose_declares_the_topology(compose_config: dict) -> None:
    services = compose_config["services"]
    assert {"postgres", "redis", "api", "realtime", "lb"} <= set(services)


async def test_compose_gateways_scale_without_host_ports(compose_config: dict) -> None:
    realtime = compose_config["services"]["realtime"]
    # A fixed host port would make `--scale realtime=N` fail on the second replica.
    assert _published_ports(realtime) == []
    assert "container_name" not in realtime


async def test_compose_load_balancer_is_the_public_entry_on_8080(compose_config: dict) -> None:
    services = compose_config["services"]
    assert 8080 in _published_ports(services["lb"])
    # Only the load balancer is public: the services are reached through it.
    for name in ("api", "realtime"):
        assert _published_ports(services[name]) == [], name


async def test_compose_services_share_the_configuration_names(compose_config: dict) -> None:
    services = compose_config["services"]
    api_env = services["api"].get("environment", {})
    rt_env = services["realtime"].get("environment", {})
    for key in ("REDIS_URL", "JWT_SECRET", "JWT_SECRET_FILE"):
        assert key in api_env and key in rt_env, key
        assert api_env[key] == rt_env[key], key  # both sides must agree
    assert "DATABASE_URL" in api_env


async def test_compose_has_no_public_jwt_secret(compose_config: dict) -> None:
    """Unconfigured, the services generate a secret in a file on a volume both mount."""
    services = compose_config["services"]
    assert services["api"]["environment"]["JWT_SECRET"] in ("", None)
    secret_dir = services["api"]["environment"]["JWT_SECRET_FILE"].rsplit("/", 1)[0]

    def volume_at(service: dict) -> str | None:
        for mount in service.get("volumes", []):
            if isinstance(mount, dict) and mount.get("target") == secret_dir:
                return mount.get("source")
            if isinstance(mount, str) and mount.split(":")[1] == secret_dir:
                return mount.split(":")[0]
        return None

    assert volume_at(services["api"]) is not None
    assert volume_at(services["api"]) == volume_at(services["realtime"])
    assert volume_at(services["api"]) in compose_config.get("volumes", {})


async def test_compose_trusts_only_the_load_balancer(compose_config: dict) -> None:
    """X-Forwarded-For counts only from the LB's fixed address, not any private range."""
    services = compose_config["services"]
    lb_networks = services["lb"]["networks"]
    (lb_address,) = [n["ipv4_address"] for n in lb_networks.values() if n and "ipv4_address" in n]
    for name in ("api", "realtime"):
        assert services[name]["environment"]["TRUSTED_PROXIES"] == f"{lb_address}/32", name


async def test_compose_images_come_from_variables(compose_config: dict) -> None:
    """With nothing set, a user with a registry gets the official images."""
    services = compose_config["services"]
    assert services["postgres"]["image"] == "postgres:15-alpine"
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["lb"]["image"] == "haproxy:2.6-alpine"
    args = services["api"]["build"]["args"]
    assert args == {"PYTHON_IMAGE": "python:3.11-slim", "NODE_IMAGE": "node:20-slim"}


# ---- the running compose stack (make compose-test) ----------------------------------------

PROJECT = os.environ.get("CHAT_COMPOSE_PROJECT", "")
live = pytest.mark.skipif(
    not (PROJECT and os.environ.get("CHAT_BASE_URL")),
    reason="runs against the compose stack of `make compose-test` (CHAT_COMPOSE_PROJECT)",
)
RESTART_TIMEOUT = 60.0  # bound for the restart policy and the healthcheck; never reached


async def docker(*args: str) -> str:
    """Run the docker CLI; its stdout, or the test fails with its stderr."""
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"docker {' '.join(args)}: {err.decode()}"
    return out.decode()


async def containers(service: str) -> list[str]:
    """Ids of the running containers of one compose service, in a stable order."""
    out = await docker(
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    )
    return sorted(out.split())


async def state(container: str) -> dict[str, str]:
    # "|"-separated: the address is empty while the container is down.
    fmt = (
        "{{.State.Pid}}|{{.RestartCount}}|{{.State.Status}}|"
        "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}|"
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    )
    out = await docker("inspect", "-f", fmt, container)
    pid, restarts, status, health, address = out.strip().split("|")
    return {"pid": pid, "restarts": restarts, "status": status, "health": health, "ip": address}


async def replica_urls() -> dict[str, str]:
    """container id -> the gateway's own URL (the host reaches the compose network)."""
    return {c: f"http://{(await state(c))['ip']}:8000" for c in await containers("realtime")}


async def wait_restarted(container: str, restarts_before: int) -> None:
    """Until the engine has restarted the container (restart policy) and it is healthy."""
    deadline = time.monotonic() + RESTART_TIMEOUT
    while True:
        now = await state(container)
        if int(now["restarts"]) > restarts_before and now["health"] == "healthy":
            return
        assert time.monotonic() < deadline, f"{container[:12]} not restarted and healthy: {now}"
        await asyncio.sleep(0.5)  # wait-ok: polling the engine's state with a deadline


async def replica_holding(sid: str) -> str:
    """The gateway container whose log says it connected Socket.IO session `sid`."""
    deadline = time.monotonic() + 20
    while True:
        for container in await containers("realtime"):
            proc = await asyncio.create_subprocess_exec(
                "docker",
                "logs",
                container,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await proc.communicate()
            if any(sid in line and '"connected"' in line for line in out.decode().splitlines()):
                return container
        assert time.monotonic() < deadline, f"no gateway logged sid {sid}"
        await asyncio.sleep(0.2)  # wait-ok: log lines are written asynchronously


@live
async def test_compose_runs_three_healthy_gateway_replicas() -> None:
    replicas = await containers("realtime")
    assert len(replicas) == 3
    states = [await state(c) for c in replicas]
    assert all(s["health"] == "healthy" for s in states), states
    assert len({s["ip"] for s in states}) == 3


@live
async def test_compose_fans_out_across_all_replicas(lb_api: Api, sockets: SocketFactory) -> None:
    """A post through the load balancer reaches clients on every replica and on the LB."""
    sender = await sign_up_and_in(lb_api)
    reader = await sign_up_and_in(lb_api)
    urls = list((await replica_urls()).values())
    on_replicas = [
        await sockets.connect(reader.token, url, transports=["websocket"]) for url in urls
    ]
    via_lb = await sockets.connect(reader.token, transports=["websocket"])
    text = f"to every replica {uuid.uuid4().hex}"
    sent = await lb_api.send(sender, text)
    for sock in [*on_replicas, via_lb]:
        assert await sock.next_message(by_owner(sender)) == sent


async def no_loss(
    lb_url: str, name: str, fault: Callable[[list[ChatSocket]], Awaitable[None]]
) -> None:
    """Two counting clients per replica and one through the LB; a steady writer; one fault.

    Every client must end up holding every acknowledged message (live, replayed with
    `lastId`, or refetched over REST after `recovered: false`).
    """
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        api = Api(http, lb_url)
        reader, writer_user = await sign_up_and_in(api), await sign_up_and_in(api)
        newest = await api.history(reader, limit=1)
        start = int(newest[-1]["_id"]) if newest else 0
        urls = await replica_urls()
        clients = [
            ChatSocket(f"rt{i + 1}-{k + 1}", url, reader, api)
            for i, url in enumerate(urls.values())
            for k in range(2)
        ] + [ChatSocket("lb", lb_url, reader, api)]
        for client in clients:
            client.last_id = start
        writer = Writer(api, writer_user, rate=5.0)  # under the per-user limit
        try:
            await asyncio.gather(*(client.connect() for client in clients))
            writer.start()
            await writer.wait_acks(20)
            await fault(clients)
            after = len(writer.acknowledged)
            await writer.wait_acks(after + 20, timeout=60)
            await writer.stop()
            acknowledged = writer.ids()
            deadline = time.monotonic() + 45
            await asyncio.gather(
                *(c.wait_ids(acknowledged, max(0.1, deadline - time.monotonic())) for c in clients),
                return_exceptions=True,  # reported as lost below
            )
            line, lost = report(name, writer, clients)
            print(f"\n{line}")
            problems = {c.name: c.summary() for c in clients if lost[c.name]}
            assert not problems, f"{line}\n{problems}"
        finally:
            await writer.stop()
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


@live
@pytest.mark.timeout(240)
async def test_compose_no_loss_when_a_gateway_crashes(chat_stack: ChatStack) -> None:
    """The replica the LB client is on dies by SIGKILL; its restart policy brings it back.

    `docker kill` would not do: the engine counts it as a deliberate stop and the
    restart policy leaves the container down. A crash is the process dying on its own,
    so the container's main process gets SIGKILL from the host.
    """

    async def crash(clients: list[ChatSocket]) -> None:
        (via_lb,) = [c for c in clients if c.name == "lb"]
        victim = await replica_holding(via_lb.sio.get_sid())
        before = await state(victim)
        os.kill(int(before["pid"]), signal.SIGKILL)
        await wait_restarted(victim, int(before["restarts"]))

    await no_loss(chat_stack.lb_url, "compose_gateway_crash", crash)


@live
@pytest.mark.timeout(240)
async def test_compose_no_loss_when_redis_restarts(chat_stack: ChatStack) -> None:
    async def restart_redis(_: list[ChatSocket]) -> None:
        (redis,) = await containers("redis")
        await docker("restart", "-t", "2", redis)
        deadline = time.monotonic() + RESTART_TIMEOUT
        while (await state(redis))["health"] != "healthy":
            assert time.monotonic() < deadline, "redis not healthy again"
            await asyncio.sleep(0.5)  # wait-ok: polling the engine's state with a deadline

    await no_loss(chat_stack.lb_url, "compose_redis_restart", restart_redis)
