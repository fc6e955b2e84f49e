"""The Redis names both services derive from one prefix, and how the prefix is configured."""

from __future__ import annotations

import pytest

from services.shared.config import ConfigError, Env, redis_key_prefix
from services.shared.redis_contract import RedisKeys


def test_the_names_are_the_ones_deployments_already_have() -> None:
    keys = RedisKeys("chat-socketio")
    assert keys.manager_channel == "chat-socketio"
    assert keys.history_stream == "chat-socketio:history"
    assert keys.rate_limit_prefix == "chat-socketio:limits"
    assert keys.connections("u1") == "chat-socketio:connections:u1"
    assert keys.revoked("u1") == "chat-socketio:revoked:u1"
    assert keys.revocations_channel == "chat-socketio:revocations"
    assert keys.reads_channel == "chat-socketio:reads"


def test_the_cleanup_pattern_matches_only_this_prefix() -> None:
    assert RedisKeys("run-1").pattern == "run-1:*"
    assert RedisKeys("a*b[c]").pattern == "a\\*b\\[c\\]:*"


@pytest.mark.parametrize(
    ("environ", "prefix"),
    [
        ({}, "chat-socketio"),
        ({"SOCKETIO_CHANNEL": "prod-chat"}, "prod-chat"),  # deployments set before REDIS_KEY_PREFIX
        ({"REDIS_KEY_PREFIX": "prod-chat"}, "prod-chat"),
        ({"REDIS_KEY_PREFIX": "prod-chat", "SOCKETIO_CHANNEL": "prod-chat"}, "prod-chat"),
    ],
)
def test_the_prefix_comes_from_redis_key_prefix_or_its_older_name(
    environ: dict[str, str], prefix: str
) -> None:
    assert redis_key_prefix(Env(environ)) == prefix


def test_two_different_prefixes_are_refused() -> None:
    with pytest.raises(ConfigError, match="SOCKETIO_CHANNEL"):
        redis_key_prefix(Env({"REDIS_KEY_PREFIX": "a", "SOCKETIO_CHANNEL": "b"}))
