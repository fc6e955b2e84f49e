"""The Admin UI's password rule, credential check and sign-in throttle (pure logic)."""

from __future__ import annotations

import pytest

from services.realtime_service.admin_ui import (
    LoginThrottle,
    credentials_check,
    weak_password_reason,
)
from services.realtime_service.settings import RealtimeSettings
from services.shared.config import ConfigError, Env

PRODUCTION = {"APP_ENV": "production", "JWT_SECRET": "Zq3v9Lr0-kP2xW7sYt1bNc4mHd6fGj8a"}


@pytest.mark.parametrize(
    "password",
    ["admin", "a" * 32, "abcdabcdabcdabcd", "aAbB" * 6, "passwordpassword", "1234567812345678"],
)
def test_weak_admin_passwords_are_named(password: str) -> None:
    assert weak_password_reason(password) is not None


@pytest.mark.parametrize("password", ["correct horse battery staple", "Zq8#mW2!pL9@xR4$"])
def test_strong_admin_passwords_pass(password: str) -> None:
    assert weak_password_reason(password) is None


def test_production_refuses_to_start_with_a_weak_admin_password() -> None:
    env = {**PRODUCTION, "ADMIN_UI_USERNAME": "admin", "ADMIN_UI_PASSWORD": "admin"}
    with pytest.raises(ConfigError, match="ADMIN_UI_PASSWORD"):
        RealtimeSettings.from_env(Env(env))
    strong = {**env, "ADMIN_UI_PASSWORD": "correct horse battery staple"}
    assert RealtimeSettings.from_env(Env(strong)).admin_enabled
    assert RealtimeSettings.from_env(Env({**env, "APP_ENV": "development"})).admin_enabled


def test_credentials_check_accepts_only_the_exact_pair() -> None:
    check = credentials_check("admin", "correct horse battery staple")
    assert check({"username": "admin", "password": "correct horse battery staple"})
    for wrong in (
        {"username": "admin", "password": "correct horse battery"},
        {"username": "root", "password": "correct horse battery staple"},
        {"username": "admin"},
        {"username": ["admin"], "password": None},
        "admin:correct horse battery staple",
        None,
    ):
        assert not check(wrong)


def test_throttle_locks_an_address_out_for_the_window_only() -> None:
    throttle = LoginThrottle(max_failures=3, window_seconds=60)
    for at in (0.0, 1.0, 2.0):
        assert not throttle.locked("10.0.0.1", now=at)
        throttle.failed("10.0.0.1", now=at)
    assert throttle.locked("10.0.0.1", now=3.0)
    assert not throttle.locked("10.0.0.2", now=3.0), "other addresses are not affected"
    assert not throttle.locked("10.0.0.1", now=61.0), "the oldest failure left the window"


def test_the_admin_ui_never_sees_a_clients_credentials() -> None:
    from services.realtime_service.app import environ_for_admin_ui

    shown = environ_for_admin_ui(
        {
            "HTTP_AUTHORIZATION": "Bearer secret-token",
            "HTTP_COOKIE": "session=secret",
            "HTTP_USER_AGENT": "client/1.0",
            "QUERY_STRING": "EIO=4&transport=websocket&token=secret-token&last_id=7",
        }
    )
    assert "secret" not in repr(shown)
    assert shown["HTTP_USER_AGENT"] == "client/1.0"
    assert shown["QUERY_STRING"] == "EIO=4&transport=websocket&last_id=7"
