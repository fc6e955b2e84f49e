"""The chat namespace: who may connect, and what client events are allowed to do."""

from __future__ import annotations

import logging
from typing import Any

import socketio

from services.realtime_service.handshake import token_from_handshake
from services.shared.auth import InvalidToken, verify_token

log = logging.getLogger(__name__)


class ChatNamespace(socketio.AsyncNamespace):
    """The default namespace `/` that the existing client uses."""

    def __init__(self, jwt_secret: str, replica_name: str) -> None:
        super().__init__("/")
        self._jwt_secret = jwt_secret
        self._replica = replica_name

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Admit only clients with a valid token; the reason is sent with the refusal."""
        try:
            identity = verify_token(token_from_handshake(environ, auth), self._jwt_secret)
        except InvalidToken as exc:
            log.info("connection refused", extra={"reason": exc.reason, "replica": self._replica})
            raise socketio.exceptions.ConnectionRefusedError(f"unauthorized: {exc.reason}") from None
        await self.save_session(sid, {"user_id": identity.user_id, "name": identity.name})
        log.info("connected", extra={"sid": sid, "user_id": identity.user_id, "replica": self._replica})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        log.info("disconnected", extra={"sid": sid, "reason": str(reason), "replica": self._replica})

    async def on_sendAllMessages(self, sid: str, _data: Any = None) -> None:  # noqa: N802 - event name
        """Ignored on purpose.

        The existing client emits its own unsaved copy after each POST, and the old
        backend re-broadcast it: anyone could forge any message. The only source of
        `getAllmessages` is the API's publish after the message is committed.
        """
        log.debug("ignored client sendAllMessages", extra={"sid": sid})
