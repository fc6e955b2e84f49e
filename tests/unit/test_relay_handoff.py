"""What the relay may publish: handed-over messages and reads of the outbox, up to a hole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.api_service.db.room_events import OutboxRead
from services.api_service.relay import OutboxRelay, RelayConfig
from services.shared.config import Secret
from services.shared.messages import StoredMessage
from services.shared.redis_contract import RedisKeys


def stored(*ids: int) -> list[StoredMessage]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [StoredMessage(i, f"c{i}", "owner", "ann", "hi", at) for i in ids]


@pytest.fixture
def relay() -> OutboxRelay:
    relay = OutboxRelay(
        RelayConfig(
            database_url=Secret("postgresql://unused"),
            redis_url=Secret("redis://unused"),
            keys=RedisKeys("chat"),
            stream_max_len=100,
            stream_max_age_seconds=60,
            batch_size=3,
            handoff_max=5,
        )
    )
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


class FakeDatabase:
    """Stands in for the outbox: committed rows, rows in flight, and the relay's calls.

    Rows in flight commit when the relay waits for the writers of its read's snapshot.
    """

    def __init__(self, *committed: int, in_flight: tuple[int, ...] = ()) -> None:
        self.rows = stored(*committed)
        self.in_flight = stored(*in_flight)
        self.reads = 0
        self.waits = 0

    async def outbox_after(self, _conn: object, cursor: int, limit: int) -> OutboxRead:
        self.reads += 1
        return OutboxRead([m for m in self.rows if m.id > cursor][:limit], "100:105:101")

    async def wait_for_entry_writers(self, _conn: object, _snapshot: str) -> None:
        self.waits += 1
        self.rows = sorted([*self.rows, *self.in_flight], key=lambda m: m.id)
        self.in_flight = []


@pytest.fixture
def published(relay: OutboxRelay, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    out: list[int] = []

    async def publish(_conn: object, batch: list[StoredMessage], prev: int) -> None:
        out.extend(m.id for m in batch)

    monkeypatch.setattr(relay, "_publish", publish)
    relay._check_database = False  # the start-up read is done
    return out


def use(database: FakeDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.api_service.relay.outbox_after", database.outbox_after)
    monkeypatch.setattr(
        "services.api_service.relay.wait_for_entry_writers", database.wait_for_entry_writers
    )


async def test_handed_over_rows_are_published_without_reading_the_database(
    relay: OutboxRelay, published: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = FakeDatabase(11, 12)
    use(database, monkeypatch)
    relay.committed(stored(11, 12))
    assert await relay._drain(None, 10) == 12  # type: ignore[arg-type]
    assert published == [11, 12] and database.reads == 0 and database.waits == 0


async def test_a_notify_from_another_process_makes_the_relay_read(
    relay: OutboxRelay, published: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = FakeDatabase(11, 12, 13)
    use(database, monkeypatch)
    relay.committed(stored(11))
    relay._database_changed()  # 12 and 13 were committed elsewhere
    assert await relay._drain(None, 10) == 13  # type: ignore[arg-type]
    assert published == [11, 12, 13]


async def test_a_hole_in_the_handed_over_rows_makes_the_relay_read(
    relay: OutboxRelay, published: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = FakeDatabase(11, 13)  # 12 was skipped by a conflicting insert
    use(database, monkeypatch)
    relay.committed(stored(13))
    assert await relay._drain(None, 11) == 13  # type: ignore[arg-type]
    # The read shows the hole; 13 waits for the writers that could fill it, then goes.
    assert published == [13] and database.reads == 2 and database.waits == 1


async def test_an_entry_after_a_write_in_flight_waits_for_it(
    relay: OutboxRelay, published: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = FakeDatabase(11, 13, 14, in_flight=(12,))  # 12: another room, committing
    use(database, monkeypatch)
    relay._database_changed()
    assert await relay._drain(None, 10) == 14  # type: ignore[arg-type]
    assert published == [11, 12, 13, 14] and database.waits == 1


async def test_a_hole_after_the_first_is_waited_for_in_turn(
    relay: OutboxRelay, published: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = FakeDatabase(11, 13, in_flight=(12,))
    use(database, monkeypatch)
    relay._database_changed()
    assert await relay._drain(None, 10) == 13  # type: ignore[arg-type]
    database.rows += stored(15)  # 14 never commits
    relay._database_changed()
    assert await relay._drain(None, 13) == 15  # type: ignore[arg-type]
    assert published == [11, 12, 13, 15] and database.waits == 2


def test_a_read_of_the_outbox_is_ready_up_to_its_first_hole() -> None:
    read = OutboxRead(stored(11, 12, 14, 15), snapshot="100:105:101,103")
    assert ids(read.ready(10)) == [11, 12]  # 13 may be another room's write in flight
    assert read.ready(9) == []  # nothing before a hole right after the cursor


def test_holes_shown_final_no_longer_hold_entries_back() -> None:
    read = OutboxRead(stored(12, 14, 15, 17, 18), snapshot="100:105:")
    assert ids(read.ready(10, through=15)) == [12, 14, 15]  # 11 and 13 were never committed
    assert ids(read.ready(10, through=17)) == [12, 14, 15, 17, 18]
    assert read.ready(10) == []
