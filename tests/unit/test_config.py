"""Settings: parsed from the environment, unsafe defaults refused in production."""

from __future__ import annotations

import pytest

from services.api_service.settings import ApiSettings
from services.realtime_service.settings import RealtimeSettings
from services.shared.config import ConfigError, Env


def test_defaults_serve_a_local_developer() -> None:
    settings = ApiSettings.from_env(Env({}))
    assert settings.common.port == 8001
    assert settings.history_default_limit == 100 and settings.history_max_limit == 500
    assert settings.request_body_timeout_seconds == 10.0
    assert RealtimeSettings.from_env(Env({})).common.port == 8101


def test_secrets_do_not_show_in_repr() -> None:
    settings = ApiSettings.from_env(Env({"JWT_SECRET": "topsecretvalue", "DATABASE_URL": "postgresql://u:pw@h/db"}))
    assert "topsecretvalue" not in repr(settings)
    assert "pw@h" not in repr(settings)


@pytest.mark.parametrize(
    "environ",
    [
        {"APP_ENV": "production"},
        {"APP_ENV": "production", "JWT_SECRET": "short"},
        {"APP_ENV": "production", "JWT_SECRET": "x" * 40, "CORS_ORIGINS": "*"},
        {"PORT": "eighty"},
        {"HISTORY_MAX_LIMIT": "0"},
        {"MIGRATE_ON_START": "maybe"},
        {"APP_ENV": "staging"},
        {"REQUEST_BODY_TIMEOUT_SECONDS": "0"},
    ],
)
def test_bad_or_unsafe_configuration_fails_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ApiSettings.from_env(Env(environ))


def test_production_accepts_a_real_secret() -> None:
    env = Env({"APP_ENV": "production", "JWT_SECRET": "x" * 40, "CORS_ORIGINS": "https://chat.example.org"})
    settings = ApiSettings.from_env(env)
    assert settings.common.production and settings.common.cors_origins == ("https://chat.example.org",)
