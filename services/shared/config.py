"""Reading settings from the environment, the one place both services take them from.

Every service keeps its own frozen settings dataclass; these helpers only parse and
validate single variables so that a typo in a deployment fails at start-up with the
variable's name instead of deep inside a request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from services.shared import defaults, jwt_secret
from services.shared.addresses import AddressError, IpNetwork, parse_networks
from services.shared.redis_contract import RedisKeys

# The longest lifetime a token may claim (`exp - iat`): a little above JWT_TTL_SECONDS's
# default, so tokens the API issues pass, and a stolen secret cannot mint year-long ones.
DEFAULT_JWT_MAX_LIFETIME_SECONDS = 25 * 3600
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

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
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
    redis_url: Secret  # may carry a password
    jwt_secret: Secret
    jwt_max_lifetime_seconds: int
    cors_origins: tuple[str, ...]
    log_level: str
    production: bool
    # Every Redis key and channel the services share (see redis_contract.py).
    redis_keys: RedisKeys
    # Only these peers' X-Forwarded-For is believed (see addresses.py): the load balancer.
    trusted_proxies: tuple[IpNetwork, ...]

    @classmethod
    def from_env(cls, env: Env, *, default_port: int) -> CommonSettings:
        app_env = env.string("APP_ENV", "development").lower()
        if app_env not in {"development", "production", "test"}:
            raise ConfigError(f"APP_ENV must be development, test or production, got {app_env!r}")
        production = app_env == "production"
        settings = cls(
            host=env.string("HOST", defaults.LOCAL_HOST),
            port=env.integer("PORT", default_port, minimum=0, maximum=65535),
            redis_url=Secret(env.string("REDIS_URL", defaults.REDIS_URL)),
            jwt_secret=load_jwt_secret(env, production=production),
            jwt_max_lifetime_seconds=env.integer(
                "JWT_MAX_LIFETIME_SECONDS", DEFAULT_JWT_MAX_LIFETIME_SECONDS, minimum=60
            ),
            cors_origins=env.csv(
                "CORS_ORIGINS", ("http://localhost:3000", "http://127.0.0.1:3000")
            ),
            log_level=env.string("LOG_LEVEL", "INFO").upper(),
            production=production,
            redis_keys=RedisKeys(redis_key_prefix(env)),
            trusted_proxies=_networks(env.csv("TRUSTED_PROXIES", ("127.0.0.1/32", "::1/128"))),
        )
        settings.check_production_safety()
        return settings

    @property
    def socketio_channel(self) -> str:
        """python-socketio's manager channel, which is also the Redis key prefix."""
        return self.redis_keys.manager_channel

    def check_production_safety(self) -> None:
        """Refuse defaults that are only acceptable on a developer's machine."""
        if not self.production:
            return
        if "*" in self.cors_origins:
            raise ConfigError("APP_ENV=production refuses CORS_ORIGINS='*'")


def redis_key_prefix(env: Env) -> str:
    """`REDIS_KEY_PREFIX`, else `SOCKETIO_CHANNEL` (its older name), else the default.

    Deployments that set only `SOCKETIO_CHANNEL` keep their channel and every key.
    """
    prefix = env.string("REDIS_KEY_PREFIX", "")
    older = env.string("SOCKETIO_CHANNEL", "")
    if prefix and older and prefix != older:
        raise ConfigError(
            f"REDIS_KEY_PREFIX={prefix!r} and SOCKETIO_CHANNEL={older!r} disagree:"
            " SOCKETIO_CHANNEL is the older name of REDIS_KEY_PREFIX, set only one"
        )
    return prefix or older or defaults.REDIS_KEY_PREFIX


def load_jwt_secret(env: Env, *, production: bool) -> Secret:
    """`JWT_SECRET`, else the secret in `JWT_SECRET_FILE` (created on first start).

    A publicly known secret is refused everywhere; production also refuses one an
    attacker could guess (see jwt_secret.refuse_weak).
    """
    check = jwt_secret.refuse_weak if production else jwt_secret.refuse_public
    explicit = env.string("JWT_SECRET", "")
    if explicit:
        _check_secret(check, explicit, "JWT_SECRET")
        return Secret(explicit)
    path = Path(env.string("JWT_SECRET_FILE", defaults.JWT_SECRET_FILE))
    where = f"JWT_SECRET_FILE ({path})"
    try:
        secret = jwt_secret.read_or_create(path)
    except jwt_secret.SecretProblem as exc:
        raise ConfigError(f"{where} {exc}") from None
    except OSError as exc:
        raise ConfigError(
            f"JWT_SECRET is unset and {where} can neither be read nor created: {exc.strerror}"
        ) from None
    _check_secret(check, secret, where)
    return Secret(secret)


def _check_secret(check: Callable[[str], None], secret: str, where: str) -> None:
    try:
        check(secret)
    except jwt_secret.SecretProblem as exc:
        raise ConfigError(
            f"{where} {exc}; set a random one, e.g. {jwt_secret.HOW_TO_MAKE_ONE}"
        ) from None


def _networks(values: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    try:
        return parse_networks(values)
    except AddressError as exc:
        raise ConfigError(f"TRUSTED_PROXIES: {exc}") from None
