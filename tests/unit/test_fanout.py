"""The relay/gateway contract: packets, history entries, and proving a replay whole."""

from __future__ import annotations

import orjson
import pytest

from services.realtime_service.handshake import InvalidLastId, last_id_from_handshake
from services.realtime_service.history import is_complete
from services.shared.redis_contract import (
    BATCH_PACKET_HEAD,
    RELAY_HOST_ID,
    HistoryEntry,
    emit_packet,
    relayed_packets,
    sequence_of,
)


def entry(message_id: int, prev: int) -> HistoryEntry:
    return HistoryEntry(id=message_id, prev=prev, wire={"_id": str(message_id)})


def test_relay_packets_are_what_python_socketio_managers_read() -> None:
    packet = orjson.loads(emit_packet({"_id": "7"}, 7, 5))
    assert packet["method"] == "emit" and packet["event"] == "getAllmessages"
    assert packet["data"] == [{"_id": "7"}] and packet["namespace"] == "/"
    assert sequence_of(packet) == (7, 5)
    assert sequence_of({"method": "emit"}) is None


def test_a_batch_packet_carries_the_relay_packets_in_order() -> None:
    """What PUBLISH_BATCH builds from its entries' packets is one manager packet."""
    packets = [emit_packet({"_id": str(i)}, i, i - 1) for i in (3, 4)]
    batch = orjson.loads(BATCH_PACKET_HEAD + ",".join(p.decode() for p in packets) + "]}")
    assert batch["method"] == "emit" and batch["host_id"] == RELAY_HOST_ID
    assert [sequence_of(p) for p in relayed_packets(batch) or []] == [(3, 2), (4, 3)]
    lone = orjson.loads(packets[0])
    assert relayed_packets(lone) == [lone]  # as relays published before batch packets
    assert relayed_packets({"method": "emit", "event": "x", "data": [1]}) is None


def test_history_entries_parse_from_redis_replies() -> None:
    parsed = HistoryEntry.from_stream(
        b"12-0", {b"prev": b"9", b"msg": b'{"_id":"12"}', b"ts": b"1"}
    )
    assert parsed == HistoryEntry(id=12, prev=9, wire={"_id": "12"})


@pytest.mark.parametrize(
    ("after", "upto", "entries", "complete"),
    [
        (5, 5, [], True),  # nothing missed
        (9, 5, [], True),  # client ahead of this gateway
        (5, 9, [entry(7, 5), entry(9, 7)], True),
        (6, 9, [entry(7, 5), entry(9, 7)], True),  # lastId between two messages
        (5, 9, [entry(9, 7)], False),  # 7 was trimmed away
        (5, 9, [entry(7, 5)], False),  # 9 missing at the end
        (5, 9, [], False),  # stream lost (Redis restarted)
    ],
)
def test_a_replay_is_complete_only_when_the_prev_chain_proves_it(
    after: int, upto: int, entries: list[HistoryEntry], complete: bool
) -> None:
    assert is_complete(after, upto, entries) is complete


def test_last_id_comes_from_auth_or_query() -> None:
    assert last_id_from_handshake({}, {"lastId": "42"}) == 42
    assert last_id_from_handshake({}, {"lastId": 42}) == 42
    assert last_id_from_handshake({"QUERY_STRING": "last_id=7"}, None) == 7
    assert last_id_from_handshake({}, {"token": "t"}) is None


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", True, "9" * 19])
def test_malformed_last_id_is_refused(bad: object) -> None:
    with pytest.raises(InvalidLastId):
        last_id_from_handshake({}, {"lastId": bad})
