"""What a client may send the gateway, and what happens to a client that sends anything else.

Clients of this service only receive: they send a Socket.IO CONNECT, Engine.IO PONGs,
the upgrade probe, and now and then an event the namespace ignores. Anything else is
either a broken client or an attack, and each kind of abuse cost the gateway dearly
while it was tolerated:

* binary packets: python-socketio appends every binary frame to the pending packet
  a `45<n>-` event announced, with no bound on `n`, so one client could make the
  gateway hold hundreds of megabytes until it disconnected;
* malformed packets: python-engineio logged about 1 KB of ERROR traceback per bad
  frame and kept the connection, so a client could fill the disk with two-byte frames;
* floods: every inbound packet is handled on the event loop, so 25,000 small events
  in three seconds delayed every other client (and `/healthz`) by half a second.

A client that does any of these is refused: counted in `chat_inbound_refusals_total`
by reason, logged in one line (at most `_LOG_LINES_PER_WINDOW` such lines per window
across all clients, so a crowd of bad clients cannot flood the log either), and its
session is closed. The checks cost only on inbound packets, never on the delivery path.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from socketio import packet as sio_packet

from services.realtime_service.metrics import INBOUND_REFUSALS

log = logging.getLogger(__name__)

# Why a client was refused: the metric's label and the WebSocket close reason.
BINARY = "binary"
MALFORMED = "malformed"
RATE = "rate"
TOO_LARGE = "too_large"
CONNECT_TIMEOUT = "connect_timeout"

# Socket.IO packet types a client may send (binary events and acks are refused).
_CLIENT_PACKET_TYPES = frozenset(
    {sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.EVENT, sio_packet.ACK}
)
_BINARY_PACKET_TYPES = frozenset({sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK})

_LOG_WINDOW_SECONDS = 10.0
_LOG_LINES_PER_WINDOW = 20


class RefusedPacket(ValueError):
    """A client packet the gateway does not accept; `reason` is one of the labels above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class GatewayPacket(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet class (its public `serializer` hook), strict about client packets.

    Decoding raises `RefusedPacket` instead of whatever a broken packet happens to raise
    (ValueError, TypeError, RecursionError for deep nesting, ...), and refuses binary
    events and acks before python-socketio starts collecting their attachments.
    """

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        if (
            encoded_packet is not None and not encoded_packet
        ):  # python-socketio would skip decoding it
            raise RefusedPacket(MALFORMED, "empty Socket.IO packet")
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            raise RefusedPacket(MALFORMED, "a Socket.IO packet must be text")
        try:
            attachments = int(super().decode(encoded_packet))
        except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's
            raise RefusedPacket(
                MALFORMED, f"undecodable Socket.IO packet ({type(exc).__name__})"
            ) from None
        if self.packet_type in _BINARY_PACKET_TYPES or attachments:
            raise RefusedPacket(BINARY, "binary packets are not accepted")
        if self.packet_type not in _CLIENT_PACKET_TYPES:
            raise RefusedPacket(
                MALFORMED, f"Socket.IO packet type {self.packet_type!r} is not sent by clients"
            )
        return attachments


def take_token(
    tokens: float, stamp: float, now: float, rate: float, burst: float
) -> tuple[bool, float]:
    """One packet against a token bucket of `burst` tokens refilled at `rate` a second.

    Returns whether the packet is admitted and the tokens left (the caller stamps `now`).
    """
    tokens = min(burst, tokens + (now - stamp) * rate)
    if tokens < 1.0:
        return False, tokens
    return True, tokens - 1.0


class RefusalLog:
    """One log line per refused client, at most `lines` per `window` seconds in all.

    Each refused client is closed, so it gets one line; many bad clients at once get
    `lines` lines per window and a count of the ones left out.
    """

    def __init__(
        self, lines: int = _LOG_LINES_PER_WINDOW, window: float = _LOG_WINDOW_SECONDS
    ) -> None:
        self.lines = lines
        self.window = window
        self._window_start = -window
        self._logged = 0
        self._suppressed = 0

    def record(
        self, reason: str, address: str | None, detail: str, now: float | None = None
    ) -> bool:
        """Log the refusal unless this window's lines are spent; True if it was logged."""
        now = time.monotonic() if now is None else now
        if now - self._window_start >= self.window:
            if self._suppressed:
                log.warning("client refusals not logged", extra={"count": self._suppressed})
            self._window_start, self._logged, self._suppressed = now, 0, 0
        if self._logged >= self.lines:
            self._suppressed += 1
            return False
        self._logged += 1
        log.warning(
            "client refused", extra={"reason": reason, "address": address, "detail": detail}
        )
        return True


REFUSAL_LOG = RefusalLog()


def count_refusal(reason: str, address: str | None, detail: str) -> None:
    """Count a refused client in the metric and (rate-limited) in the log."""
    INBOUND_REFUSALS.labels(reason).inc()
    REFUSAL_LOG.record(reason, address, detail)
