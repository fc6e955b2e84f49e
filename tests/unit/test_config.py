"""Settings: parsed from the environment, unsafe defaults refused in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.api_service.settings import ApiSettings
from services.realtime_service.settings import RealtimeSettings
from services.shared.config import ConfigError, Env

REAL_SECRET = "Zq3v9Lr0-kP2xW7sYt1bNc4mHd6fGj8a"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    return tmp_path / "run" / "jwt-secret"


def test_defaults_serve_a_local_developer(secret_file: Path) -> None:
    settings = ApiSettings.from_env(Env({"JWT_SECRET_FILE": str(secret_file)}))
    assert settings.common.port == 8001
    assert settings.history_default_limit == 100 and settings.history_max_limit == 500
    assert settings.request_body_timeout_seconds == 10.0
    assert RealtimeSettings.from_env(Env({"JWT_SECRET_FILE": str(secret_file)})).common.port == 8101


def test_secrets_do_not_show_in_repr() -> None:
    settings = ApiSettings.from_env(
        Env({"JWT_SECRET": "topsecretvalue", "DATABASE_URL": "postgresql://u:pw@h/db"})
    )
    assert "topsecretvalue" not in repr(settings)
    assert "pw@h" not in repr(settings)


@pytest.mark.parametrize(
    "environ",
    [
        {"APP_ENV": "production", "JWT_SECRET": "short"},
        {"APP_ENV": "production", "JWT_SECRET": REAL_SECRET, "CORS_ORIGINS": "*"},
        {"JWT_SECRET": REAL_SECRET, "JWT_TTL_SECONDS": str(30 * 24 * 3600)},
        {"PORT": "eighty"},
        {"HISTORY_MAX_LIMIT": "0"},
        {"MIGRATE_ON_START": "maybe"},
        {"APP_ENV": "staging"},
        {"REQUEST_BODY_TIMEOUT_SECONDS": "0"},
        {
            "APP_ENV": "production",
            "JWT_SECRET": REAL_SECRET,
            "CHAT_FAILPOINT": "crash_after_commit",
        },
    ],
)
def test_bad_or_unsafe_configuration_fails_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ApiSettings.from_env(Env(environ))


def test_production_accepts_a_real_secret() -> None:
    env = Env(
        {
            "APP_ENV": "production",
            "JWT_SECRET": REAL_SECRET,
            "CORS_ORIGINS": "https://chat.example.org",
        }
    )
    settings = ApiSettings.from_env(env)
    assert settings.common.production and settings.common.cors_origins == (
        "https://chat.example.org",
    )
