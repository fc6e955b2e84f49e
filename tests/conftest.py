"""Suite-wide pytest wiring: the `security` marker and the attack report it prints.

Attack tests (marked `security`) run in `make test` like every other test, and alone
with `make test-security`. Each states the figure a reader should judge it by
(memory growth under a flood, sessions left alive, log bytes per bad frame, ...)
through the `attack_report` fixture; the figures are printed at the end of the run,
one line per attack.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

_REPORT_KEY = pytest.StashKey[list[tuple[str, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "security: an attack or failure scenario with a figure (make test-security)"
    )
    config.stash[_REPORT_KEY] = []


@pytest.fixture
def attack_report(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Record `figure` for the attack named `attack`, printed in the run's summary."""
    lines = request.config.stash[_REPORT_KEY]

    def record(attack: str, figure: str) -> None:
        lines.append((attack, figure))

    return record


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_REPORT_KEY, [])
    if not lines:
        return
    terminalreporter.section("attacks")
    width = max(len(attack) for attack, _ in lines)
    for attack, figure in lines:
        terminalreporter.write_line(f"{attack.ljust(width)}  {figure}")
