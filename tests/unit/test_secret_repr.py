"""No settings or config object shows a secret in its repr (and so in logs and tracebacks).

Secrets stay wrapped in `Secret` inside every settings/config object and are unwrapped
only at the call that needs the plain string. Each object is built here with known
secrets; a new `*Settings`/`*Config` class in services fails the test until it has a
builder below.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

import services
from services.api_service.ratelimit import RedisLimitsConfig
from services.api_service.relay import RelayConfig
from services.api_service.settings import ApiSettings
from services.realtime_service.presence import PresenceConfig
from services.realtime_service.settings import RealtimeSettings
from services.shared.config import CommonSettings, Env, Secret
from services.shared.redis_contract import RedisKeys
from stack.local import StackConfig

JWT_SECRET = "Jw7-secret-Zq3v9Lr0kP2xW7sYt1bNc4"
DB_PASSWORD = "db-pass-Vb82kq"
REDIS_PASSWORD = "redis-pass-Xc41mz"
ADMIN_PASSWORD = "admin-pass-Qw93nd-Lk27hf"
SECRETS = (JWT_SECRET, DB_PASSWORD, REDIS_PASSWORD, ADMIN_PASSWORD)

DATABASE_URL = f"postgresql://chat:{DB_PASSWORD}@db.internal:5432/chat"
REDIS_URL = f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0"
ENVIRON = {
    "JWT_SECRET": JWT_SECRET,
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "ADMIN_UI_USERNAME": "admin",
    "ADMIN_UI_PASSWORD": ADMIN_PASSWORD,
}


def api_settings() -> ApiSettings:
    return ApiSettings.from_env(Env(ENVIRON))


BUILDERS: dict[type, Callable[[], object]] = {
    ApiSettings: api_settings,
    RealtimeSettings: lambda: RealtimeSettings.from_env(Env(ENVIRON)),
    CommonSettings: lambda: api_settings().common,
    RelayConfig: lambda: RelayConfig(
        database_url=Secret(DATABASE_URL),
        redis_url=Secret(REDIS_URL),
        keys=RedisKeys("chat"),
        stream_max_len=100,
        stream_max_age_seconds=60,
    ),
    RedisLimitsConfig: lambda: RedisLimitsConfig(Secret(REDIS_URL), key_prefix="chat:limits"),
    StackConfig: lambda: StackConfig(DATABASE_URL, REDIS_URL),
    PresenceConfig: lambda: RealtimeSettings.from_env(Env(ENVIRON)).presence,
}


def config_classes() -> set[type]:
    """Every dataclass in services whose name says it holds settings or configuration."""
    found: set[type] = set()
    root = Path(services.__file__).parent
    for module_info in pkgutil.walk_packages([str(root)], prefix="services."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
                and value.__name__.endswith(("Settings", "Config"))
            ):
                found.add(value)
    return found


def test_every_settings_and_config_class_is_checked() -> None:
    missing = {cls.__qualname__ for cls in config_classes()} - {
        cls.__qualname__ for cls in BUILDERS
    }
    assert not missing, f"add a builder with known secrets for: {sorted(missing)}"


@pytest.mark.parametrize("cls", list(BUILDERS), ids=lambda cls: cls.__name__)
def test_repr_and_str_show_no_secret(cls: type) -> None:
    shown = repr(BUILDERS[cls]()) + str(BUILDERS[cls]())
    leaked = [secret for secret in SECRETS if secret in shown]
    assert not leaked, f"{cls.__name__} shows {leaked} in: {shown}"


def test_the_secrets_are_there_to_use() -> None:
    settings = api_settings()
    realtime = RealtimeSettings.from_env(Env(ENVIRON))
    assert settings.database_url.value == DATABASE_URL
    assert settings.common.redis_url.value == REDIS_URL
    assert settings.common.jwt_secret.value == JWT_SECRET
    assert realtime.admin_password.value == ADMIN_PASSWORD
