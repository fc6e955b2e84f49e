"""The room-state bench's plan: who churns, types and reads where, and what it reads back."""

from __future__ import annotations

from bench.room_state import RoomStatePlan, counter_deltas, read_notice, scrape_counters
from bench.rooms import RoomLayout
from services.shared.read_state import ReadNotice


def test_churn_users_come_after_the_clients_and_are_spread_over_the_rooms() -> None:
    plan = RoomStatePlan(RoomLayout(10, 100), churn_per_s=5, hold_seconds=5, offline_seconds=8)
    # 5/s x (5 s online + 8 s away) = 65 users busy at a time, plus a fifth spare.
    assert plan.churn_pool == 78
    assert plan.churn_user_index(0) == 100
    assert [plan.churn_room(j) for j in (0, 9, 10, 77)] == [0, 9, 0, 7]
    sizes = plan.room_sizes()
    assert sum(sizes.values()) == 100 + 78
    assert sizes[0] == 10 + 8 and sizes[9] == 10 + 7


def test_no_churn_needs_no_pool() -> None:
    plan = RoomStatePlan(RoomLayout(10, 100), churn_per_s=0)
    assert plan.churn_pool == 0
    assert plan.room_sizes() == dict.fromkeys(range(10), 10)


def test_typists_are_members_spread_over_replicas_and_members_take_turns_reading() -> None:
    layout = RoomLayout(3, 9)
    plan = RoomStatePlan(layout)
    assert [plan.typist(r) for r in range(3)] == [0, 4, 8]
    # Rooms of 10 over 2 replicas (client i on replica i mod 2): half the typists on each.
    even = RoomStatePlan(RoomLayout(100, 1000))
    assert sum(even.typist(r) % 2 for r in range(100)) == 50
    # Messages 1, 4, 7, 10 go to room 0 (clients 0-2): read by 0, 1, 2, then 0 again.
    assert [plan.reader(s) for s in (1, 4, 7, 10)] == [0, 1, 2, 0]
    assert all(plan.reader(s) in layout.members(layout.room_of_seq(s)) for s in range(1, 50))


def test_receipts_are_on_in_one_room_in_receipt_every() -> None:
    plan = RoomStatePlan(RoomLayout(8, 80), receipt_every=4)
    assert [r for r in range(8) if plan.receipts_on(r)] == [0, 4]
    never = RoomStatePlan(RoomLayout(8, 80), receipt_every=0)
    assert not any(never.receipts_on(r) for r in range(8))


def test_the_read_notices_are_the_ones_the_gateways_decode() -> None:
    published = ReadNotice.encode_all([read_notice("u1", "r1", 42, True)])
    assert ReadNotice.decode_all(published) == [ReadNotice("u1", "r1", 42, True)]


def test_counters_are_summed_over_replicas_and_differenced_around_the_window() -> None:
    page = """# HELP chat_typing_events_total typing
# TYPE chat_typing_events_total counter
chat_typing_events_total{outcome="relayed"} 10.0
chat_typing_events_total{outcome="rate_limited"} 1.0
chat_fanout_deliveries_total{replica="a"} 100.0
chat_fanout_deliveries_total{replica="b"} 50.0
chat_receipt_batches_total 3.0
chat_receipt_batches_created 1.7e9
process_cpu_seconds_total 12.0
"""
    before = scrape_counters(page)
    assert before == {
        'chat_typing_events_total{outcome="relayed"}': 10.0,
        'chat_typing_events_total{outcome="rate_limited"}': 1.0,
        "chat_fanout_deliveries_total": 150.0,
        "chat_receipt_batches_total": 3.0,
    }
    after = dict(before, chat_receipt_batches_total=8.0)
    after['chat_typing_events_total{outcome="unavailable"}'] = 2.0
    assert counter_deltas(before, after) == {
        "chat_receipt_batches_total": 5.0,
        'chat_typing_events_total{outcome="unavailable"}': 2.0,
    }
