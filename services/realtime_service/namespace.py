"""The chat namespace: who may connect, and what client events are allowed to do."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import socketio

from services.realtime_service.connections import Admission, UserConnections
from services.realtime_service.delivery import OrderedRedisManager
from services.realtime_service.handshake import (
    InvalidLastId,
    last_id_from_handshake,
    token_from_handshake,
)
from services.realtime_service.metrics import CONNECTED_CLIENTS, REFUSED_CONNECTIONS
from services.shared.auth import InvalidToken, verify_token
from services.shared.config import DEFAULT_JWT_MAX_LIFETIME_SECONDS

log = logging.getLogger(__name__)


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The default namespace `/` that the existing client uses."""

    def __init__(
        self,
        jwt_secret: str,
        replica_name: str,
        connections: UserConnections,
        max_token_lifetime: int = DEFAULT_JWT_MAX_LIFETIME_SECONDS,
    ) -> None:
        super().__init__("/")
        self._jwt_secret = jwt_secret
        self._max_token_lifetime = max_token_lifetime
        self._replica = replica_name
        self._connections = connections
        self._connected = CONNECTED_CLIENTS.labels(replica_name)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Admit only clients with a valid token of a user not revoked.

        A refused client is sent the reason with the refusal. A client that sends
        `lastId` is held back from live messages until what it missed has been replayed
        to it (see delivery.py).
        """
        try:
            identity = verify_token(
                token_from_handshake(environ, auth), self._jwt_secret, self._max_token_lifetime
            )
            last_id = last_id_from_handshake(environ, auth)
        except InvalidToken as exc:
            self._refuse(f"unauthorized: {exc.reason}", "unauthorized")
        except InvalidLastId:
            self._refuse("invalid lastId: must be a message _id", "invalid_last_id")
        admission = await self._connections.admit(identity.user_id, sid)
        if admission is Admission.REVOKED:
            self._refuse("unauthorized: access revoked", "revoked")
        if admission is Admission.AT_CAP:
            self._refuse("too many connections for this user", "too_many_connections")
        self._connected.inc()
        if last_id is not None:
            self._manager.begin_recovery(sid)
            self.server.start_background_task(self._manager.recover, sid, last_id)
        log.info(
            "connected",
            extra={
                "sid": sid,
                "user_id": identity.user_id,
                "last_id": last_id,
                "replica": self._replica,
            },
        )

    def _refuse(self, message: str, reason: str) -> NoReturn:
        REFUSED_CONNECTIONS.labels(reason).inc()
        log.info("connection refused", extra={"reason": reason, "replica": self._replica})
        raise socketio.exceptions.ConnectionRefusedError(message)

    @property
    def _manager(self) -> OrderedRedisManager:
        manager = self.server.manager
        assert isinstance(manager, OrderedRedisManager)
        return manager

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        """Forget the client; a disconnect from the namespace also ends its Engine.IO session.

        python-socketio keeps the session open after a namespace DISCONNECT (from the
        client, or `AsyncServer.disconnect` as revocation uses). Kept, it would be an idle,
        pinged session that no longer counts against any cap: the user's connection slot
        and the address's pending-session slot were both given back. A transport that
        closed or timed out is already ending, and a drained one must end without a CLOSE
        packet (clients would not reconnect), so only those two reasons end it here, and
        only a session that is not already closing (a refused client is closed its own way).
        """
        if reason in (self.server.reason.CLIENT_DISCONNECT, self.server.reason.SERVER_DISCONNECT):
            eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
            session = self.server.eio.sockets.get(eio_sid) if eio_sid is not None else None
            if session is not None and not session.closing and not session.closed:
                self.server.start_background_task(self.server.eio.disconnect, eio_sid)
        self._manager.forget(sid)
        self._connected.dec()
        try:
            await self._connections.release(sid)
        finally:
            log.info(
                "disconnected", extra={"sid": sid, "reason": str(reason), "replica": self._replica}
            )

    async def on_sendAllMessages(self, sid: str, _data: Any = None) -> None:
        """Ignored on purpose.

        The existing client emits its own unsaved copy after each POST, and the old
        backend re-broadcast it: anyone could forge any message. The only source of
        `getAllmessages` is the API's publish after the message is committed.
        """
        log.debug("ignored client sendAllMessages", extra={"sid": sid})
