"""What the schemathesis run answered per operation: filled by the test, printed by the conftest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class OperationTally:
    """What one operation answered during the run."""

    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())


# Filled by the contract test, printed by tests/contract/conftest.py at the end of the run.
TALLY: dict[str, OperationTally] = {}
SUMMARY_NOTES: list[str] = []
