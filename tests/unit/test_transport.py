"""WebSocket frames built by the gateway's fast path are byte-identical to aiohttp's."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp._websocket.models import WSMsgType
from aiohttp._websocket.writer import WebSocketWriter

from services.realtime_service.transport import text_frame


class RecordingTransport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False


def aiohttp_frame(text: str) -> bytes:
    transport = RecordingTransport()
    writer = WebSocketWriter(protocol=Any, transport=transport)  # type: ignore[arg-type]
    writer._write_websocket_frame(text.encode(), WSMsgType.TEXT, 0)
    return bytes(transport.written)


@pytest.mark.parametrize(
    "text",
    ["3", '42["getAllmessages",{"_id":"1","text":"hé 🙂"}]', "x" * 125, "x" * 126, "é" * 40_000, "y" * 70_000],
)
def test_frames_match_aiohttp_for_every_length_class(text: str) -> None:
    assert text_frame(text) == aiohttp_frame(text)


def test_the_same_text_reuses_one_frame() -> None:
    text = '42["getAllmessages",{"_id":"7"}]'
    assert text_frame(text) is text_frame(text)
