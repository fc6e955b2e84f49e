"""The machine's side of `make install`: what it installs, and who migrates the schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stack import LocalStack, StackConfig, infra


def test_without_root_the_missing_packages_are_named_and_nothing_is_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda command: None)
    monkeypatch.setattr(infra.os, "geteuid", lambda: 1000)
    ran: list[str] = []
    monkeypatch.setattr(infra, "_run", lambda cmd, cwd=None, check=True: ran.append(cmd))

    missing = infra.install_system_packages(with_browser=True)

    assert {"haproxy", "postgresql", "redis-server", "nodejs", "chromium"} <= set(missing)
    assert ran == []
    assert "please install: haproxy" in capsys.readouterr().err


def test_the_browser_is_installed_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda command: None)
    assert "chromium" not in infra.missing_packages(with_browser=False)
    assert "chromium" in infra.missing_packages(with_browser=True)


def test_npm_runs_only_where_the_lock_is_newer_than_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in infra.NPM_FOLDERS:
        (tmp_path / folder / "node_modules").mkdir(parents=True)
        (tmp_path / folder / "package-lock.json").write_text("{}")
    (tmp_path / infra.NPM_FOLDERS[0] / "node_modules" / ".package-lock.json").write_text("{}")
    monkeypatch.setattr(shutil, "which", lambda command: f"/usr/bin/{command}")
    ran: list[str] = []
    monkeypatch.setattr(infra, "_run", lambda cmd, cwd=None, check=True: ran.append(cmd))

    infra.install_npm_packages(tmp_path)

    assert ran == [f"npm ci --prefix {infra.NPM_FOLDERS[1]} --no-audit --no-fund --silent"]


def _stack(migrate: bool, tmp_path: Path) -> LocalStack:
    config = StackConfig.ephemeral(
        "postgresql://postgres@127.0.0.1:1/never",
        "redis://127.0.0.1:1/0",
        log_dir=tmp_path,
        migrate=migrate,
        ensure_infra=False,
    )
    return LocalStack(config)


def test_the_api_does_not_migrate_again_after_the_launcher_did(tmp_path: Path) -> None:
    assert _stack(True, tmp_path).api.env["MIGRATE_ON_START"] == "false"


def test_the_api_migrates_itself_when_the_launcher_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGRATE_ON_START", raising=False)
    assert "MIGRATE_ON_START" not in _stack(False, tmp_path).api.env
