"""The machine's side of the project: system packages, PostgreSQL and Redis, npm packages.

`python -m stack install` (what `scripts/bootstrap.sh`, hence `make install`, `make run`
and `make test`, runs) installs what is missing and starts the local servers; the
launcher and the tests call the same functions before they start services.

Only servers at the *local default address* (loopback, default port) are ever started or
installed here; a DATABASE_URL / REDIS_URL pointing anywhere else is the caller's
infrastructure and is only checked, because silently starting a different server than
the one configured would hide a misconfiguration.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

# Standard library only, like this package (see its docstring).
from services.shared import defaults

DEFAULT_DATABASE_URL = defaults.DATABASE_URL
DEFAULT_REDIS_URL = defaults.REDIS_URL

T = TypeVar("T")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_PG_PORT = defaults.POSTGRES_PORT
_REDIS_PORT = defaults.REDIS_PORT

# The contract's command: no persistence, because this Redis only carries pub/sub and
# short-lived buffers for development and tests.
_REDIS_START = (
    f"redis-server --daemonize yes --bind {defaults.LOCAL_HOST} -::1 --port {_REDIS_PORT} "
    "--save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


class InfraError(RuntimeError):
    """A backing service is unreachable and could not be started."""


def database_url() -> str:
    """DATABASE_URL from the environment, or the local default."""
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def redis_url() -> str:
    """REDIS_URL from the environment, or the local default."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PortInUseError(InfraError):
    """A port the stack must listen on is taken, most likely by an earlier run."""


def port_is_free(host: str, port: int) -> bool:
    """True if a server could listen on host:port now (bound as aiohttp binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """The (host, port) a database/redis URL points at."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def is_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_reachable(host: str, port: int, timeout: float) -> bool:
    """Poll host:port until it accepts connections or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_reachable(host, port):
            return True
        time.sleep(0.2)
    return False


def _is_local_default(host: str, port: int, default_port: int) -> bool:
    return host in _LOOPBACK and port == default_port


def _run(cmd: str, cwd: Path | None = None, check: bool = True) -> None:
    """Run a shell command, echoing it, and fail loudly with its output."""
    print(f"[stack] $ {cmd}", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False, cwd=cwd)
    if done.returncode != 0 and check:
        raise InfraError(f"`{cmd}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")


# "command package" pairs: the command proves the package is there.
SYSTEM_PACKAGES = (
    ("haproxy", "haproxy"),
    ("docker-compose", "docker-compose"),
    ("pg_ctlcluster", "postgresql"),
    ("psql", "postgresql-client"),
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("node", "nodejs"),
    ("npm", "npm"),
)
BROWSER_PACKAGES = (("chromium", "chromium"),)
# Folders whose package-lock.json `npm ci` installs: the chat page's socket.io client
# and the JavaScript test client.
NPM_FOLDERS = ("web", "tests/js")


def _say(text: str) -> None:
    print(f"[stack] {text}", file=sys.stderr, flush=True)


def missing_packages(with_browser: bool = False) -> list[str]:
    """The Debian packages this machine lacks for `make run` (and the browser tests)."""
    pairs = SYSTEM_PACKAGES + (BROWSER_PACKAGES if with_browser else ())
    missing = [package for command, package in pairs if shutil.which(command) is None]
    try:
        import ensurepip  # noqa: F401 -- Debian ships venv's pip bootstrap separately
    except ImportError:
        missing.append("python3-venv")
    return missing


def install_system_packages(with_browser: bool = False) -> list[str]:
    """apt-get install what is missing (as root); returns what is still missing.

    Without root or apt-get it only names the packages: the caller goes on with what
    is present, and whatever needs a missing tool says so when it runs.
    """
    missing = missing_packages(with_browser)
    if not missing:
        return []
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _say(f"please install: {' '.join(missing)} (e.g. sudo apt-get install {' '.join(missing)})")
        return missing
    fresh_postgres = "postgresql" in missing
    _apt_install(*missing)
    if fresh_postgres:
        allow_local_trust()
        # apt may have started the cluster with the old pg_hba.conf: stop it, so that
        # ensure_postgres starts it with the new one.
        _pg_ctlcluster("stop", check=False)
    return []


def install_npm_packages(root: Path) -> None:
    """`npm ci` in each of NPM_FOLDERS whose node_modules is missing or older than its lock."""
    if shutil.which("npm") is None:
        return
    for folder in NPM_FOLDERS:
        lock = root / folder / "package-lock.json"
        installed = root / folder / "node_modules" / ".package-lock.json"
        if not lock.exists():
            continue
        if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
            continue
        _say(f"installing npm packages in {folder}")
        _run(f"npm ci --prefix {folder} --no-audit --no-fund --silent", cwd=root)


def _apt_install(*packages: str) -> None:
    """apt-get install as root; otherwise say what is missing (we cannot sudo for the user)."""
    if os.geteuid() != 0:
        raise InfraError(f"missing {' '.join(packages)}: install them (apt-get install ...)")
    env = "DEBIAN_FRONTEND=noninteractive"
    _run(f"{env} apt-get update -qq")
    _run(f"{env} apt-get install -y -qq {' '.join(packages)}")


def _start_postgres() -> None:
    """Start the Debian cluster `main`, installing PostgreSQL first if needed."""
    if shutil.which("pg_ctlcluster") is None:
        _apt_install("postgresql")
        allow_local_trust()
        _pg_ctlcluster("stop", check=False)  # apt may have started it with the old pg_hba.conf
    _pg_ctlcluster("start")


def _pg_ctlcluster(action: str, check: bool = True) -> None:
    """`pg_ctlcluster <newest version> main <action>` (Debian's cluster of the packages)."""
    clusters = Path("/etc/postgresql")
    versions = (
        sorted(
            (p.name for p in clusters.iterdir() if p.name.replace(".", "").isdigit()),
            key=lambda name: tuple(int(part) for part in name.split(".")),
        )
        if clusters.is_dir()
        else []
    )
    if not versions:
        raise InfraError("no cluster under /etc/postgresql")
    _run(f"pg_ctlcluster --skip-systemctl-redirect {versions[-1]} main {action}", check=check)


def allow_local_trust() -> None:
    """Trust loopback TCP logins so the password-less default DATABASE_URL works.

    Only for a development/CI machine on which we just installed PostgreSQL: Debian's
    default asks for a password over TCP, which the contract's default URL does not carry.
    """
    for hba in Path("/etc/postgresql").glob("*/main/pg_hba.conf"):
        lines = [
            "host all all 127.0.0.1/32 trust",
            "host all all ::1/128 trust",
        ]
        original = hba.read_text()
        if lines[0] not in original:
            hba.write_text("\n".join(lines) + "\n" + original)  # first match wins


def _start_redis() -> None:
    """Start a throw-away redis-server, installing it first if needed."""
    if shutil.which("redis-server") is None:
        _apt_install("redis-server")
    for directory in ("/var/lib/redis", "/var/log/redis"):
        Path(directory).mkdir(parents=True, exist_ok=True)
    _run(_REDIS_START)


def ensure_postgres(url: str | None = None, timeout: float = 30.0) -> str:
    """Make sure the PostgreSQL server of `url` answers; start the local one if it is down."""
    return _ensure_server(
        url or database_url(), _PG_PORT, "PostgreSQL", "DATABASE_URL", _start_postgres, timeout
    )


def ensure_redis(url: str | None = None, timeout: float = 15.0) -> str:
    """Make sure the Redis server of `url` answers; start the local one if it is down."""
    return _ensure_server(
        url or redis_url(), _REDIS_PORT, "Redis", "REDIS_URL", _start_redis, timeout
    )


def _ensure_server(
    url: str, default_port: int, name: str, variable: str, start: Callable[[], None], timeout: float
) -> str:
    """Return `url` once its server answers; only the local default server is ever started."""
    host, port = host_port(url, default_port)
    if is_reachable(host, port):
        return url
    if not _is_local_default(host, port, default_port):
        raise InfraError(f"{name} at {host}:{port} is not reachable ({variable})")
    start()
    if not wait_reachable(host, port, timeout):
        raise InfraError(f"started {name} but {host}:{port} is still not reachable")
    return url


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for printing and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    """The database a DATABASE_URL names."""
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise InfraError(f"DATABASE_URL names no database: {url!r}")
    return name


async def _create_database(url: str) -> bool:
    import asyncpg  # project dependency; imported late so `import stack` stays stdlib-only

    name = database_name(url)
    conn = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        # Identifiers cannot be bind parameters; quote it the way PostgreSQL does.
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await conn.close()


def _run_coroutine_in_thread(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run() in a fresh thread, so this works even when called from async code."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro_factory()))
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="stack-createdb")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def ensure_database(url: str | None = None) -> bool:
    """Create the database named in `url` if missing (the services never create it).

    Returns True when it was created. Connects to the `postgres` maintenance database
    of the same server with the same credentials.
    """
    url = url or database_url()
    return _run_coroutine_in_thread(lambda: _create_database(url))


def drop_database(url: str) -> None:
    """Drop the database named in `url` (for throw-away test databases)."""

    async def drop() -> None:
        import asyncpg

        quoted = '"' + database_name(url).replace('"', '""') + '"'
        conn = await asyncpg.connect(_with_database(url, "postgres"))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        finally:
            await conn.close()

    _run_coroutine_in_thread(drop)


def ensure_infra(db_url: str | None = None, cache_url: str | None = None) -> tuple[str, str]:
    """Reachable PostgreSQL (with its database created) and Redis; returns both URLs."""
    db_url = ensure_postgres(db_url)
    ensure_database(db_url)
    cache_url = ensure_redis(cache_url)
    return db_url, cache_url
