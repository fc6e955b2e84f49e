"""Publishing stored messages to every gateway through python-socketio's Redis channel.

A write-only `AsyncRedisManager` is python-socketio's documented way for an external
process to emit: each gateway's manager receives the packet and emits
`getAllmessages` to its own clients. Only committed messages are published.
"""

from __future__ import annotations

import logging

import socketio

from services.shared import jsonenc
from services.shared.messages import NEW_MESSAGE_EVENT, StoredMessage

log = logging.getLogger(__name__)


class MessagePublisher:
    """Emit committed messages to all connected clients on all gateways."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self._manager = socketio.AsyncRedisManager(
            redis_url, channel=channel, write_only=True, json=jsonenc,
            logger=logging.getLogger("services.api_service.socketio"),
        )

    async def publish(self, message: StoredMessage) -> None:
        await self._manager.emit(NEW_MESSAGE_EVENT, message.to_wire(), namespace="/")

    async def close(self) -> None:
        redis = getattr(self._manager, "redis", None)
        if redis is not None:
            await redis.aclose()
