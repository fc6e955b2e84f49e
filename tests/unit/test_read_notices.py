"""Read notices: their wire format, and publishing that never fails a request it follows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.exceptions

from services.api_service.read_notices import ReadNotices
from services.shared.read_state import ReadNotice
from services.shared.redis_contract import RedisKeys

ANN = "0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c"
ROOM = "9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d"


class FlakyRedis:
    """Answers `publish` as told: each call takes the next outcome (an exception or None)."""

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.published: list[tuple[str, bytes]] = []
        self.calls = 0

    async def publish(self, channel: str, data: bytes) -> int:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.published.append((channel, data))
        return 1


def test_a_notice_survives_the_round_trip() -> None:
    notice = ReadNotice(ANN, ROOM, 9_007_199_254_740_993, receipt=True)
    assert ReadNotice.decode(notice.encode()) == notice
    assert notice.read_updated() == {"room": ROOM, "lastRead": "9007199254740993"}


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"user": "a", "room": "b", "lastRead": 12, "receipt": false}',
        b'{"user": "a", "room": "b", "lastRead": "-1", "receipt": false}',
        b'{"user": "a", "room": "b", "lastRead": "12", "receipt": "yes"}',
        b'{"room": "b", "lastRead": "12", "receipt": false}',
    ],
)
def test_anything_else_on_the_channel_is_not_a_notice(data: bytes) -> None:
    assert ReadNotice.decode(data) is None


async def test_a_notice_goes_to_the_reads_channel() -> None:
    client: Any = FlakyRedis()
    notices = ReadNotices(client, RedisKeys("p"))
    notice = ReadNotice(ANN, ROOM, 12, receipt=False)
    assert await notices.publish(notice)
    assert client.published == [("p:reads", ReadNotice.encode_all([notice]))]


async def test_the_notices_of_one_linger_go_out_as_one_message() -> None:
    client: Any = FlakyRedis()
    notices = ReadNotices(client, RedisKeys("p"), linger_seconds=0.01)
    sent = [ReadNotice(ANN, ROOM, n, receipt=n % 2 == 0) for n in (12, 13, 14)]
    assert await asyncio.gather(*(notices.publish(n) for n in sent)) == [True, True, True]
    assert client.published == [("p:reads", ReadNotice.encode_all(sent))]
    assert ReadNotice.decode_all(client.published[0][1]) == sent
    assert ReadNotice.decode_all(sent[0].encode()) == sent[:1]  # one notice alone, as before
    assert ReadNotice.decode_all(b'[{"user": "a"}]') is None


async def test_while_redis_is_away_notices_are_dropped_without_waiting_on_it() -> None:
    client: Any = FlakyRedis(redis.exceptions.ConnectionError("refused"))
    notices = ReadNotices(client, RedisKeys("p"), retry_seconds=60)
    notice = ReadNotice(ANN, ROOM, 12, receipt=True)
    assert not await notices.publish(notice)
    assert not await notices.publish(notice)
    assert client.calls == 1  # the second was not even tried
    assert client.published == []


async def test_notices_are_published_again_once_redis_answers() -> None:
    client: Any = FlakyRedis(redis.exceptions.ConnectionError("refused"))
    notices = ReadNotices(client, RedisKeys("p"), retry_seconds=0)
    notice = ReadNotice(ANN, ROOM, 12, receipt=True)
    assert not await notices.publish(notice)
    assert await notices.publish(notice)
    assert client.published == [("p:reads", ReadNotice.encode_all([notice]))]
