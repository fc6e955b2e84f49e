"""The JWT secret: never a public one, random and shared through a file when unset."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from services.shared import jwt_secret
from services.shared.config import CommonSettings, ConfigError, Env

PUBLIC_DEFAULT = "dev-only-insecure-jwt-secret-change-me"  # printed in the source until now


def settings(tmp_path: Path, **environ: str) -> CommonSettings:
    env = {"JWT_SECRET_FILE": str(tmp_path / "run" / "jwt-secret"), **environ}
    return CommonSettings.from_env(Env(env), default_port=8001)


@pytest.mark.parametrize("app_env", ["development", "test", "production"])
@pytest.mark.parametrize(
    "secret", [PUBLIC_DEFAULT, "dev-only-secret-change-me", "your-256-bit-secret"]
)
def test_a_publicly_known_secret_is_refused_in_every_environment(
    tmp_path: Path, app_env: str, secret: str
) -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET is a publicly known default"):
        settings(tmp_path, APP_ENV=app_env, JWT_SECRET=secret)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("a" * 32, "uses fewer than 8 distinct characters"),
        ("short-but-random-9fK2", "is shorter than 32 characters"),
        ("0123456789" * 4, "is repetitive"),
        ("abcdefghijklmnopqrstuvwxyz0123456789", "is repetitive"),
        ("zyxwvutsrqponmlkjihgfedcba9876543210", "is repetitive"),
        ("password1password2password3passw", "is repetitive"),
        ("aaabaacabbabcacbaccbbbcbcccabdefgh", "has too little entropy"),
    ],
)
def test_production_refuses_a_low_entropy_secret_naming_the_variable(
    tmp_path: Path, secret: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"JWT_SECRET {problem}"):
        settings(tmp_path, APP_ENV="production", JWT_SECRET=secret)


def test_production_accepts_random_secrets(tmp_path: Path) -> None:
    for _ in range(200):
        secret = jwt_secret.new_secret()
        assert (
            settings(tmp_path, APP_ENV="production", JWT_SECRET=secret).jwt_secret.value == secret
        )


def test_without_jwt_secret_a_random_one_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = settings(tmp_path).jwt_secret.value
    path = tmp_path / "run" / "jwt-secret"
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 43 and first != PUBLIC_DEFAULT
    assert settings(tmp_path).jwt_secret.value == first  # the next start reads it
    assert settings(tmp_path, APP_ENV="production").jwt_secret.value == first
    other = tmp_path / "elsewhere"
    assert settings(other).jwt_secret.value != first  # no two installations share one


def test_services_starting_together_all_get_the_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "shared-volume" / "jwt-secret"
    starters = 16
    barrier = threading.Barrier(starters)
    results: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            results.append(jwt_secret.read_or_create(path))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert len(results) == starters and len(set(results)) == 1
    assert path.read_text().strip() == results[0]
    assert [p.name for p in path.parent.iterdir()] == ["jwt-secret"]  # no temporary left


def test_an_empty_or_public_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run" / "jwt-secret"
    path.parent.mkdir()
    path.write_text("")
    with pytest.raises(ConfigError, match="JWT_SECRET_FILE .* is empty"):
        settings(tmp_path)
    path.write_text(PUBLIC_DEFAULT + "\n")
    with pytest.raises(ConfigError, match="JWT_SECRET_FILE .* is a publicly known default"):
        settings(tmp_path)


def test_an_unwritable_secret_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="JWT_SECRET is unset and JWT_SECRET_FILE"):
        CommonSettings.from_env(
            Env({"JWT_SECRET_FILE": str(blocker / "jwt-secret")}), default_port=8001
        )
