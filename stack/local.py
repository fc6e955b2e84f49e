"""The local topology: migrations, one API, N Socket.IO gateways and HAProxy in front.

It mirrors docker-compose.yml with plain processes because this is what a machine
without Docker (CI, most laptops during development) can run, and the integration tests
need *real* processes they can kill to prove the delivery guarantees.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from services.shared import defaults
from stack import infra
from stack.process import ManagedProcess, StackStartError, wait_http_ok

REPO_ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg"
MAX_GATEWAYS = 8  # haproxy.cfg has slots REALTIME_1 .. REALTIME_8


@dataclass(frozen=True)
class StackConfig:
    """Where everything listens and what it connects to. Ports must be free."""

    database_url: str = field(repr=False)  # either may carry a password
    redis_url: str = field(repr=False)
    lb_port: int = defaults.LB_PORT
    api_port: int = defaults.API_PORT
    realtime_ports: tuple[int, ...] = defaults.REALTIME_PORTS
    host: str = defaults.LOCAL_HOST
    # Added to every child's environment (e.g. JWT_SECRET, REDIS_KEY_PREFIX, LOG_LEVEL).
    extra_env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # None: <repo>/.run/logs
    echo: bool = False  # also copy children's output to our stdout, prefixed by name
    ensure_infra: bool = True  # start local PostgreSQL/Redis if down; create the database
    # Run `python -m services.api_service migrate` before the api, and start the api with
    # MIGRATE_ON_START=false: the schema is migrated once per start, by the launcher.
    migrate: bool = True
    python: str = sys.executable
    haproxy_cfg: Path = HAPROXY_CFG

    def __post_init__(self) -> None:
        if not 1 <= len(self.realtime_ports) <= MAX_GATEWAYS:
            raise ValueError(f"need 1..{MAX_GATEWAYS} realtime ports, got {self.realtime_ports}")
        ports = [self.lb_port, self.api_port, *self.realtime_ports]
        if len(set(ports)) != len(ports):
            raise ValueError(f"ports must be distinct: {ports}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: object) -> StackConfig:
        """The `make run` configuration: LB_PORT, API_PORT, REALTIME_PORTS, DATABASE_URL, ..."""
        values: dict[str, object] = {
            "database_url": environ.get("DATABASE_URL") or infra.DEFAULT_DATABASE_URL,
            "redis_url": environ.get("REDIS_URL") or infra.DEFAULT_REDIS_URL,
            "lb_port": int(environ.get("LB_PORT") or defaults.LB_PORT),
            "api_port": int(environ.get("API_PORT") or defaults.API_PORT),
            "realtime_ports": tuple(
                int(p) for p in (environ.get("REALTIME_PORTS") or "").replace(",", " ").split()
            )
            or defaults.REALTIME_PORTS,
        }
        if environ.get("STACK_LOG_DIR"):
            values["log_dir"] = Path(environ["STACK_LOG_DIR"])
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def ephemeral(
        cls, database_url: str, redis_url: str, gateways: int = 2, **overrides: object
    ) -> StackConfig:
        """Free ports picked by the OS, so tests never collide with `make run` or each other."""
        ports: set[int] = set()
        while len(ports) < gateways + 2:
            ports.add(infra.free_port())
        lb_port, api_port, *realtime = sorted(ports)
        values: dict[str, object] = {
            "lb_port": lb_port,
            "api_port": api_port,
            "realtime_ports": tuple(realtime),
        }
        values.update(overrides)
        return cls(database_url, redis_url, **values)  # type: ignore[arg-type]


class LocalStack:
    """Start/stop the topology; a context manager. Gateway indexes are 0-based."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.log_dir = config.log_dir or REPO_ROOT / ".run" / "logs"
        self.api = self._service("api", "services.api_service", config.api_port)
        if config.migrate:
            # The launcher has migrated before the API starts (see _prepare): the API
            # applying them again would be a second pass over the same schema.
            self.api.env["MIGRATE_ON_START"] = "false"
        self.gateways = [
            self._service(f"realtime-{i + 1}", "services.realtime_service", port)
            for i, port in enumerate(config.realtime_ports)
        ]
        self.lb = self._haproxy()

    # ---- URLs -------------------------------------------------------------------------

    def _url(self, port: int) -> str:
        return f"http://{self.config.host}:{port}"

    @property
    def lb_url(self) -> str:
        """The public entry point: REST and /socket.io/ behind HAProxy."""
        return self._url(self.config.lb_port)

    @property
    def api_url(self) -> str:
        """The API directly, bypassing the load balancer."""
        return self._url(self.config.api_port)

    @property
    def gateway_urls(self) -> tuple[str, ...]:
        """Each Socket.IO gateway directly, in REALTIME port order."""
        return tuple(self._url(port) for port in self.config.realtime_ports)

    @property
    def processes(self) -> tuple[ManagedProcess, ...]:
        """All long-running children, in start order."""
        return (self.api, *self.gateways, self.lb)

    # ---- building the children ----------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Stray LB variables from the caller's shell would add servers to haproxy.cfg.
        for key in [k for k in env if k.startswith("REALTIME_") or k == "LB_BIND"]:
            del env[key]
        env.update(
            DATABASE_URL=self.config.database_url,
            REDIS_URL=self.config.redis_url,
            HOST=self.config.host,
            PYTHONUNBUFFERED="1",  # log lines reach the log file as they happen
        )
        env.update(self.config.extra_env)
        return env

    def _service(self, name: str, module: str, port: int) -> ManagedProcess:
        env = self._base_env()
        env.update(PORT=str(port), REPLICA_NAME=name)
        return ManagedProcess(
            name,
            [self.config.python, "-m", module],
            env,
            self.log_dir / f"{name}.log",
            REPO_ROOT,
            echo=self.config.echo,
        )

    def _haproxy(self) -> ManagedProcess:
        env = self._base_env()
        env.update(
            LB_BIND=f"{self.config.host}:{self.config.lb_port}",
            API_SERVER=f"{self.config.host}:{self.config.api_port}",
        )
        env.pop("REALTIME_DNS", None)
        for i, port in enumerate(self.config.realtime_ports, start=1):
            env[f"REALTIME_{i}"] = f"{self.config.host}:{port}"
        binary = shutil.which("haproxy") or "haproxy"
        argv = [binary, "-db", "-f", str(self.config.haproxy_cfg)]  # -db: foreground
        return ManagedProcess(
            "haproxy", argv, env, self.log_dir / "haproxy.log", REPO_ROOT, echo=self.config.echo
        )

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Bring everything up and wait until it is ready, or stop it all and raise.

        Ready means: each service's /readyz is 200 (its Postgres/Redis are reachable)
        and the load balancer answers /healthz through to the API.
        """
        deadline = time.monotonic() + timeout
        self._check_ports()
        try:
            self._prepare(deadline)
            self.api.start()
            for gateway in self.gateways:
                gateway.start()  # start all first: they boot in parallel
            # Each /readyz must come from the process just started (it reports its pid).
            wait_http_ok(self.api, f"{self.api_url}/readyz", deadline, own_pid=True)
            for gateway, url in zip(self.gateways, self.gateway_urls, strict=True):
                wait_http_ok(gateway, f"{url}/readyz", deadline, own_pid=True)
            self.lb.start()
            wait_http_ok(self.lb, f"{self.lb_url}/healthz", deadline)
            if not self.lb.is_running():  # e.g. its port was taken after _check_ports
                raise StackStartError(self.lb, f"exited with {self.lb.returncode()}")
        except BaseException:
            self.stop()
            raise

    def _check_ports(self) -> None:
        """Refuse to start anything while a port of ours is taken (an earlier run's, often).

        Otherwise the service on that port dies on "address already in use" while the
        process holding the port answers for it.
        """
        named = {"load balancer": self.config.lb_port, "api": self.config.api_port}
        named.update(
            {f"gateway {i}": port for i, port in enumerate(self.config.realtime_ports, start=1)}
        )
        taken = [
            f"{port} ({name})"
            for name, port in named.items()
            if not infra.port_is_free(self.config.host, port)
        ]
        if taken:
            raise infra.PortInUseError(
                f"port {', '.join(taken)} on {self.config.host} is already in use, perhaps by an "
                "earlier `make run` still running: stop it, or choose other ports "
                "(LB_PORT, API_PORT, REALTIME_PORTS)"
            )

    def _prepare(self, deadline: float) -> None:
        """Tools, backing services and schema, before any service starts."""
        self._check_haproxy()
        if self.config.ensure_infra:
            infra.ensure_postgres(self.config.database_url)
            infra.ensure_database(self.config.database_url)
            infra.ensure_redis(self.config.redis_url)
        if self.config.migrate:
            self._migrate(deadline)

    def _migrate(self, deadline: float) -> None:
        env = self._base_env()
        argv = [self.config.python, "-m", "services.api_service", "migrate"]
        migrate = ManagedProcess(
            "migrate", argv, env, self.log_dir / "migrate.log", REPO_ROOT, self.config.echo
        )
        migrate.start()
        try:
            code = migrate.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            migrate.stop()
            raise StackStartError(migrate, "did not finish in time") from None
        if code != 0:
            raise StackStartError(migrate, f"exited with {code}")

    def _check_haproxy(self) -> None:
        if shutil.which("haproxy") is None:
            raise FileNotFoundError("haproxy is not installed: run `make install`")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the gateways (all at once), then the load balancer, then the API.

        The gateways go first because their drain writes what each client has queued
        and closes its transport so it reconnects: that needs the load balancer still
        carrying their connections. A gateway stops listening at once, so no new
        session starts on it meanwhile. Stopping them in parallel keeps the stop as
        short as the slowest gateway's drain, however many there are.
        """
        stoppers = [
            threading.Thread(target=gateway.stop, args=(timeout,), name=f"stop-{gateway.name}")
            for gateway in self.gateways
        ]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        self.lb.stop(timeout)
        self.api.stop(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def failed_process(self) -> ManagedProcess | None:
        """The first child that exited without being asked to (kill_gateway counts as asked)."""
        for proc in self.processes:
            if proc.pid is not None and not proc.is_running() and not proc.expected_exit:
                return proc
        return None

    # ---- fault injection helpers for tests --------------------------------------------

    def gateway_process(self, i: int) -> ManagedProcess:
        """The i-th gateway (0-based); `.pid`, `.popen`, `.log_path` are there for tests."""
        return self.gateways[i]

    def kill_gateway(
        self, i: int, sig: int = signal.SIGKILL, timeout: float = 10.0, wait: bool = True
    ) -> int | None:
        """Send `sig` to gateway i and (if `wait`) wait for it to exit; returns its exit status.

        SIGKILL simulates a crash (no drain); SIGTERM exercises the graceful shutdown;
        SIGSTOP with wait=False freezes it (a hung replica; stop()/restart_gateway end it).
        """
        gateway = self.gateways[i]
        gateway.expected_exit = True
        gateway.send_signal(sig)
        if wait:
            gateway.popen.wait(timeout)
        return gateway.returncode()

    def restart_gateway(self, i: int, timeout: float = 30.0) -> None:
        """Stop gateway i if it still runs, start it again on the same port, wait for /readyz."""
        gateway = self.gateways[i]
        if gateway.is_running():
            gateway.stop()
        gateway.start()
        wait_http_ok(
            gateway, f"{self.gateway_urls[i]}/readyz", time.monotonic() + timeout, own_pid=True
        )

    def urls(self) -> dict[str, str]:
        """Human-facing map of everything that listens, for `make run` to print."""
        urls = {
            "entry point (REST + Socket.IO)": self.lb_url,
            "chat page": f"{self.lb_url}/",
            "API reference / OpenAPI": f"{self.lb_url}/docs  {self.lb_url}/openapi.json",
            "entry point health": f"{self.lb_url}/healthz",
            "api": self.api_url,
            "api health / readiness": f"{self.api_url}/healthz  {self.api_url}/readyz",
            "api metrics": f"{self.api_url}/metrics",
        }
        for i, url in enumerate(self.gateway_urls, start=1):
            urls[f"gateway {i} (Socket.IO at /socket.io/)"] = url
            urls[f"gateway {i} health / readiness"] = f"{url}/healthz  {url}/readyz"
            urls[f"gateway {i} metrics"] = f"{url}/metrics"
        urls["logs"] = str(self.log_dir)
        return urls
