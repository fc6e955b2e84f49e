"""docker-compose.yml describes the same topology: valid, complete, one public port."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from .harness import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


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
    env = {k: v for k, v in os.environ.items() if k not in {"LB_PORT", "COMPOSE_FILE"}}
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
    for key in ("REDIS_URL", "JWT_SECRET"):
        assert key in api_env and key in rt_env, key
        assert api_env[key] == rt_env[key], key  # both sides must agree
    assert "DATABASE_URL" in api_env
