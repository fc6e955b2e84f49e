"""Canaries: one test per private name of its libraries the gateway relies on.

The libraries are aiohttp, python-engineio and python-socketio.

Each touchpoint is listed, with why it is there and what it saves, in
services/realtime_service/seams/ (and docs/INTERNALS.md). Were a library upgrade to
rename or reshape one, the gateway could silently lose a guard, a protocol fix or a
saving; its test here fails first, with a message naming the touchpoint to revisit.
`make check-upstream` runs these against the newest releases of the libraries.
"""

from __future__ import annotations

import pytest

from services.realtime_service.inbound import GatewayPacket, RefusedPacket
from services.realtime_service.seams import Touchpoint, TouchpointChanged, every_touchpoint

TOUCHPOINTS = every_touchpoint()


@pytest.mark.parametrize("touchpoint", TOUCHPOINTS, ids=[t.name for t in TOUCHPOINTS])
def test_touchpoint(touchpoint: Touchpoint) -> None:
    try:
        touchpoint.check()
    except TouchpointChanged:
        raise
    except Exception as exc:
        raise TouchpointChanged(touchpoint.name, f"{type(exc).__name__}: {exc}") from exc


def test_each_touchpoint_is_listed_once_with_its_reasons() -> None:
    names = [t.name for t in TOUCHPOINTS]
    assert len(names) == len(set(names))
    for touchpoint in TOUCHPOINTS:
        assert touchpoint.used_in and touchpoint.why and touchpoint.saves, touchpoint.name


def test_the_touchpoint_list_in_the_docs_matches_the_code() -> None:
    from pathlib import Path

    internals = (Path(__file__).resolve().parents[2] / "docs" / "INTERNALS.md").read_text()
    for touchpoint in TOUCHPOINTS:
        assert f"`{touchpoint.name}`" in internals, (
            f"docs/INTERNALS.md does not list {touchpoint.name}"
        )


def test_socketio_decodes_client_packets_with_the_configured_packet_class() -> None:
    """The public `serializer=` hook.

    python-socketio decodes every client packet with GatewayPacket.
    """
    import socketio

    server = socketio.AsyncServer(async_mode="aiohttp", serializer=GatewayPacket)
    assert server.packet_class is GatewayPacket, (
        "library touchpoint changed: socketio serializer= packet class"
    )


def test_socketio_packet_decode_still_reports_attachments() -> None:
    with pytest.raises(RefusedPacket) as refused:
        GatewayPacket(encoded_packet='51-["x",{"_placeholder":true,"num":0}]')
    assert refused.value.reason == "binary", (
        "library touchpoint changed: socketio Packet.decode attachment count"
    )
