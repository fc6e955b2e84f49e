"""`python -m bench upkeep` against the real Redis: it measures and leaves nothing behind."""

from __future__ import annotations

import os
from typing import Any

import redis

from bench.upkeep import main

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_upkeep_reports_both_costs_and_deletes_its_keys() -> None:
    results: list[dict[str, Any]] = []
    argv = ["--connections", "30", "--rounds", "2", "--tokens", "20", "--redis-url", REDIS_URL]

    assert main([*argv, "--no-save"], lambda result, save: results.append(result)) == 0

    [result] = results
    assert result["connections"] == 30
    assert result["renewal_round"]["cpu_ms"] > 0 and result["renewal_round"]["wall_ms"] > 0
    verify = result["token_verify"]
    assert verify["first_us"] > verify["again_us"] > 0  # a remembered token skips PyJWT
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert list(client.scan_iter(match="bench-upkeep-*")) == []
    finally:
        client.close()
