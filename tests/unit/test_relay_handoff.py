"""The relay takes handed-over messages only when they continue its cursor without a hole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.api_service.relay import OutboxRelay, RelayConfig
from services.shared.messages import StoredMessage


def stored(*ids: int) -> list[StoredMessage]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [StoredMessage(i, f"c{i}", "owner", "ann", "hi", at) for i in ids]


@pytest.fixture
def relay() -> OutboxRelay:
    relay = OutboxRelay(RelayConfig(database_url="postgresql://unused", redis_url="redis://unused",
                                    channel="chat", stream_max_len=100, stream_max_age_seconds=60,
                                    batch_size=3, handoff_max=5))
    relay.is_leader = True
    return relay


def ids(messages: list[StoredMessage]) -> list[int]:
    return [m.id for m in messages]


def test_contiguous_messages_are_taken_in_batches(relay: OutboxRelay) -> None:
    relay.committed(stored(11, 12, 13, 14))
    assert ids(relay._take_handed_over(10)) == [11, 12, 13]
    assert ids(relay._take_handed_over(13)) == [14]
    assert relay._take_handed_over(14) == []


def test_a_hole_after_the_cursor_means_reading_the_database(relay: OutboxRelay) -> None:
    relay.committed(stored(12, 13))  # 11 was committed by another process, or skipped
    assert relay._take_handed_over(10) == []
    # After the database read moved the cursor past them, they are dropped.
    assert relay._take_handed_over(13) == []


def test_a_hole_inside_the_handed_over_run_stops_the_batch(relay: OutboxRelay) -> None:
    relay.committed(stored(11, 13))
    assert ids(relay._take_handed_over(10)) == [11]
    assert relay._take_handed_over(11) == []


def test_a_process_that_does_not_lead_keeps_nothing(relay: OutboxRelay) -> None:
    relay.is_leader = False
    relay.committed(stored(11))
    assert relay._take_handed_over(10) == []


def test_a_stuck_relay_does_not_hold_messages_without_bound(relay: OutboxRelay) -> None:
    relay.committed(stored(*range(11, 17)))  # 6 > handoff_max: kept for now
    relay.committed(stored(17))  # over the cap: 11..16 are dropped and will be re-read
    assert relay._take_handed_over(10) == []
    assert ids(relay._take_handed_over(16)) == [17]


def test_commits_reported_out_of_order_are_taken_in_id_order(relay: OutboxRelay) -> None:
    relay.committed(stored(13, 14))
    relay.committed(stored(11, 12))  # the other batch in flight committed first
    assert ids(relay._take_handed_over(10)) == [11, 12, 13]
    assert ids(relay._take_handed_over(13)) == [14]
