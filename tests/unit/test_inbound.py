"""The inbound guard's pure parts.

The token bucket, the refusal log's budget and strict packet decoding.
"""

from __future__ import annotations

import logging

import pytest

from services.realtime_service.inbound import GatewayPacket, RefusalLog, RefusedPacket, take_token


def test_a_full_bucket_admits_a_burst_then_refills_at_the_rate() -> None:
    tokens, stamp = 0.0, 0.0  # a new connection: refilled from time 0, so full
    admitted = 0
    for _ in range(100):
        ok, tokens = take_token(tokens, stamp, 1000.0, rate=10.0, burst=60.0)
        stamp = 1000.0
        admitted += ok
    assert admitted == 60
    ok, tokens = take_token(tokens, stamp, 1000.05, rate=10.0, burst=60.0)
    assert not ok  # half a token refilled
    ok, _ = take_token(tokens, 1000.05, 1000.2, rate=10.0, burst=60.0)
    assert ok


def test_the_refusal_log_keeps_to_its_budget_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = RefusalLog(lines=3, window=10.0)
    with caplog.at_level(logging.WARNING, logger="services.realtime_service.inbound"):
        logged = [
            log.record("malformed", "203.0.113.9", "bad", now=100.0 + i * 0.01) for i in range(50)
        ]
        log.record("malformed", "203.0.113.9", "bad", now=111.0)
    assert logged.count(True) == 3
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("client refused") == 4
    assert messages.count("client refusals not logged") == 1
    assert caplog.records[3].count == 47  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("encoded", "reason"),
    [
        ("garbage", "malformed"),
        ("2[", "malformed"),
        ("2" + "[" * 50_000, "malformed"),
        ("", "malformed"),
        ("4/x,", "malformed"),  # CONNECT_ERROR is the server's
        ('51-["x",{"_placeholder":true,"num":0}]', "binary"),
        ('5999999999-["x"]', "binary"),
        ('61-[{"_placeholder":true,"num":0}]', "binary"),
    ],
)
def test_client_packets_that_are_refused(encoded: str, reason: str) -> None:
    with pytest.raises(RefusedPacket) as refused:
        GatewayPacket(encoded_packet=encoded)
    assert refused.value.reason == reason


def test_non_text_packets_are_refused() -> None:
    with pytest.raises(RefusedPacket):
        GatewayPacket(encoded_packet=[1])


@pytest.mark.parametrize(
    "encoded", ['0{"token":"x"}', "0", "1", '2["sendAllMessages",{}]', "3/chat,1[]", "0/random,"]
)
def test_client_packets_that_pass(encoded: str) -> None:
    GatewayPacket(encoded_packet=encoded)
