"""`python -m bench connects` against a real gateway and Redis: it measures and cleans up."""

from __future__ import annotations

import os
from typing import Any

import redis

from bench.connects import main

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_connects_reports_the_cpu_of_a_connect_and_disconnect_and_deletes_its_keys() -> None:
    results: list[dict[str, Any]] = []
    argv = ["--target", "ours", "--cycles", "200", "--rounds", "1", "--settle", "2"]

    code = main([*argv, "--redis-url", REDIS_URL, "--no-save"], lambda r, _: results.append(r))

    assert code == 0
    [result] = results
    ours = result["ours"]
    assert ours["failed"] == 0 and [r["cycles"] for r in ours["rounds"]] == [200]
    # 200 cycles are a fifth of a second of CPU or more: many clock ticks above the idle.
    assert ours["cpu_us_per_cycle"] > 0 and ours["connect_ms_p50"] > 0
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert list(client.scan_iter(match="bench-connects-*")) == []
    finally:
        client.close()
