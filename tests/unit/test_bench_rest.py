"""The REST bench's arithmetic: paired ratios and CPU accounting across exiting processes."""

from __future__ import annotations

import pytest

from bench.rest import rest_ratios, ticks_since


def test_each_api_run_is_compared_with_the_pgbench_run_next_to_it_and_the_median_is_reported() -> (
    None
):
    result = {
        "post_messages": [
            {"concurrency": 1, "round": 1, "rps": 100.0},
            {"concurrency": 1, "round": 2, "rps": 300.0},
            {"concurrency": 1, "round": 3, "rps": 200.0},
        ],
        "get_messages_limit50": [{"concurrency": 1, "round": n, "rps": 50.0} for n in (1, 2, 3)],
        "pgbench": {
            # The database was faster in the second round: its pair keeps that out.
            "insert": [
                {"concurrency": 1, "round": 1, "tps": 400.0},
                {"concurrency": 1, "round": 2, "tps": 600.0},
                {"concurrency": 1, "round": 3, "tps": 500.0},
            ],
            "select50": [
                {"concurrency": 1, "round": 1, "tps": 100.0},
                {"concurrency": 1, "round": 2, "error": "boom"},
                {"concurrency": 1, "round": 3, "tps": 200.0},
            ],
            "api_tx": [{"concurrency": 1, "tps": 400.0}],
        },
    }
    ratios = rest_ratios(result)
    assert ratios["post_vs_pgbench_insert_by_round"] == {"1": [0.25, 0.5, 0.4]}
    assert ratios["post_vs_pgbench_insert"] == {"1": 0.4}
    assert ratios["get_vs_pgbench_select50_by_round"] == {
        "1": [0.5, 0.25]
    }  # the failed run is left out
    assert ratios["post_vs_pgbench_api_tx"] == {"1": 0.5}  # median POST rate, 200/s


def test_runs_from_different_rounds_are_never_compared() -> None:
    result = {
        "post_messages": [{"concurrency": 1, "round": 1, "rps": 100.0}],
        "get_messages_limit50": [{"concurrency": 1, "round": 1, "rps": 50.0}],
        "pgbench": {
            "insert": [{"concurrency": 1, "round": 2, "tps": 400.0}],
            "select50": [{"concurrency": 1, "round": 1, "tps": 100.0}],
            "api_tx": [],
        },
    }
    with pytest.raises(AssertionError, match="unpaired"):
        rest_ratios(result)


def test_a_process_that_exits_between_samples_does_not_count_as_negative_time() -> None:
    before = {10: 500, 11: 7_000}  # 11 is a backend that exits
    after = {10: 650, 12: 30}  # 12 started in between
    assert ticks_since(before, after) == 180
