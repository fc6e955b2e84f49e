"""Reading settings from the environment, the one place both services take them from.

Every service keeps its own frozen settings dataclass; these helpers only parse and
validate single variables so that a typo in a deployment fails at start-up with the
variable's name instead of deep inside a request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.shared.addresses import AddressError, IpNetwork, parse_networks

DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""


@dataclass(frozen=True)
class Secret:
    """A string that never shows itself in `repr`, logs or tracebacks."""

    value: str

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__


class Env:
    """Typed access to an environment mapping (os.environ by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def string(self, name: str, default: str) -> str:
        value = self._environ.get(name, "").strip()
        return value or default

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ConfigError(f"{name}={value} is outside [{minimum}, {maximum or 'inf'}]")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def csv(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self._environ.get(name)
        if raw is None or not raw.strip():
            return default
        return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class CommonSettings:
    """Settings every service reads, with the same names everywhere."""

    host: str
    port: int
    redis_url: str
    jwt_secret: Secret
    cors_origins: tuple[str, ...]
    log_level: str
    production: bool
    socketio_channel: str
    # Only these peers' X-Forwarded-For is believed (see addresses.py): the load balancer.
    trusted_proxies: tuple[IpNetwork, ...]

    @classmethod
    def from_env(cls, env: Env, *, default_port: int) -> CommonSettings:
        app_env = env.string("APP_ENV", "development").lower()
        if app_env not in {"development", "production", "test"}:
            raise ConfigError(f"APP_ENV must be development, test or production, got {app_env!r}")
        settings = cls(
            host=env.string("HOST", "127.0.0.1"),
            port=env.integer("PORT", default_port, minimum=0, maximum=65535),
            redis_url=env.string("REDIS_URL", "redis://127.0.0.1:6379/0"),
            jwt_secret=Secret(env.string("JWT_SECRET", DEV_JWT_SECRET)),
            cors_origins=env.csv(
                "CORS_ORIGINS", ("http://localhost:3000", "http://127.0.0.1:3000")
            ),
            log_level=env.string("LOG_LEVEL", "INFO").upper(),
            production=app_env == "production",
            socketio_channel=env.string("SOCKETIO_CHANNEL", "chat-socketio"),
            trusted_proxies=_networks(env.csv("TRUSTED_PROXIES", ("127.0.0.1/32", "::1/128"))),
        )
        settings.check_production_safety()
        return settings

    def check_production_safety(self) -> None:
        """Refuse defaults that are only acceptable on a developer's machine."""
        if not self.production:
            return
        secret = self.jwt_secret.value
        if secret == DEV_JWT_SECRET or len(secret) < 32:
            raise ConfigError("APP_ENV=production needs JWT_SECRET set to at least 32 characters")
        if "*" in self.cors_origins:
            raise ConfigError("APP_ENV=production refuses CORS_ORIGINS='*'")


def _networks(values: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    try:
        return parse_networks(values)
    except AddressError as exc:
        raise ConfigError(f"TRUSTED_PROXIES: {exc}") from None
