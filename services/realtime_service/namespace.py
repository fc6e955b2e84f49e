"""The chat namespace: who may connect, and what client events are allowed to do."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, NoReturn

import socketio
from redis.exceptions import RedisError

from services.realtime_service.connections import Admission, Admitted, UserConnections
from services.realtime_service.delivery import OrderedRedisManager
from services.realtime_service.handshake import (
    InvalidLastId,
    last_id_from_handshake,
    rooms_from_handshake,
    token_from_handshake,
)
from services.realtime_service.metrics import (
    CONNECTED_CLIENTS,
    REFUSED_CONNECTIONS,
    ROOMS_AWARE_CONNECTS,
)
from services.realtime_service.typing_indicators import TypingRelay
from services.shared.auth import InvalidToken, TokenVerifier
from services.shared.config import DEFAULT_JWT_MAX_LIFETIME_SECONDS

log = logging.getLogger(__name__)

# Pauses between reads of a client's memberships after it was admitted without them
# (the last one repeats until they can be read).
MEMBERSHIPS_RECHECK_SECONDS = (0.5, 1.0, 2.0, 5.0)


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The default namespace `/` that the existing client uses."""

    def __init__(
        self,
        jwt_secret: str,
        replica_name: str,
        connections: UserConnections,
        max_token_lifetime: int = DEFAULT_JWT_MAX_LIFETIME_SECONDS,
        typing: TypingRelay | None = None,
    ) -> None:
        super().__init__("/")
        # A reconnecting client (a page reload, a flapping network) presents the token
        # it had: checking it again cost about a fifth of a connect's CPU.
        self._tokens = TokenVerifier(jwt_secret, max_token_lifetime)
        self._replica = replica_name
        self._connections = connections
        self._typing = typing
        self._connected = CONNECTED_CLIENTS.labels(replica_name)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """python-socketio's dispatch, except a client's own `connect` or `disconnect` event.

        python-socketio hands a client event named `connect` or `disconnect` to the same
        handlers as the real ones. A connected client that sent `disconnect` would be
        forgotten here (its rooms no longer kept in step with its memberships, its
        connection slot given back) while staying connected. Those events reach the
        handlers only while python-socketio is connecting or disconnecting the client.
        """
        if event in ("connect", "disconnect") and self.server.manager.is_connected(args[0], "/"):
            log.info("ignored client-sent reserved event", extra={"event": event, "sid": args[0]})
            return None
        return await super().trigger_event(event, *args)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Admit only clients with a valid token of a user not revoked.

        A refused client is sent the reason with the refusal. A client that sends
        `lastId` is held back from live messages until what it missed has been replayed
        to it (see delivery.py). A rooms-aware client (docs/ROOMS.md) is put in the
        rooms of its user's memberships, read in the admission's round trip.
        """
        started = time.perf_counter()
        try:
            identity = self._tokens.verify(token_from_handshake(environ, auth))
            last_id = last_id_from_handshake(environ, auth)
        except InvalidToken as exc:
            self._refuse(f"unauthorized: {exc.reason}", "unauthorized")
        except InvalidLastId:
            self._refuse("invalid lastId: must be a message _id", "invalid_last_id")
        rooms = rooms_from_handshake(environ, auth)
        if last_id is not None:
            # Before the first await: python-socketio has already put the socket in the
            # namespace's broadcast room, so a message delivered during the admission
            # would reach it live, ahead of its replay, and then again in the replay.
            self._manager.begin_recovery(sid)
        try:
            admitted = await self._admit(sid, identity.user_id, rooms)
            if admitted.decision is Admission.REVOKED:
                self._refuse("unauthorized: access revoked", "revoked")
            if admitted.decision is Admission.AT_CAP:
                self._refuse("too many connections for this user", "too_many_connections")
        except BaseException:
            self._manager.forget(sid)
            raise
        self._connected.inc()
        # Admitted without its memberships (Redis away, or the relay rebuilding them): it
        # is held back from every message until it is sent back to reconnect, so that
        # its cursor stays where it was and the replay then covers all of its rooms.
        unknown = rooms and (admitted.memberships is None or not admitted.memberships.complete)
        if last_id is not None or unknown:
            self._manager.begin_recovery(sid)
        if rooms:
            ROOMS_AWARE_CONNECTS.inc()
            if unknown or admitted.memberships is None:
                self._manager.rooms_unknown(sid, identity.user_id)
            else:
                self._manager.rooms_admitted(sid, identity.user_id, admitted.memberships)
            if self._typing is not None:
                self._typing.connected(sid, identity.user_id, identity.name)
        if unknown:
            self.server.start_background_task(
                self._reconnect_when_memberships_known, sid, identity.user_id
            )
        elif last_id is not None:
            self.server.start_background_task(self._manager.recover, sid, last_id)
        log.info(
            "connected",
            extra={
                "sid": sid,
                "user_id": identity.user_id,
                "last_id": last_id,
                "rooms": len(admitted.memberships.rooms) if admitted.memberships else None,
                "connect_ms": round((time.perf_counter() - started) * 1000, 2),
                "replica": self._replica,
            },
        )

    async def _reconnect_when_memberships_known(self, sid: str, user_id: str) -> None:
        """Send a client admitted without its memberships back to connect again, once known.

        While Redis does not answer (or the relay is still rebuilding the hashes after
        Redis lost them) a rooms-aware client is admitted, so that an outage of Redis
        does not lock everybody out, but held back from live messages: with only the
        rooms that could be read, it would advance its cursor past messages of its other
        rooms and never get them. Once the memberships can be read complete, its
        transport is closed (as a draining replica does): the client reconnects with
        the cursor it came with, is admitted with its rooms, and the replay gives it
        what it missed in all of them.
        """
        last = MEMBERSHIPS_RECHECK_SECONDS[-1]
        for delay in itertools.chain(MEMBERSHIPS_RECHECK_SECONDS, itertools.repeat(last)):
            await asyncio.sleep(delay)
            if not self._manager.is_connected(sid, "/"):
                return
            try:
                known = await self._connections.memberships_now(
                    user_id, self._manager.last_delivered
                )
            except (RedisError, TimeoutError):
                continue
            if known.complete:
                log.info("memberships known again: reconnecting the client", extra={"sid": sid})
                self._manager.reconnect_client(sid)
                return

    async def _admit(self, sid: str, user_id: str, rooms: bool) -> Admitted:
        """The admission; for a rooms-aware client, with its membership events buffered.

        Membership events delivered while the admission is in flight are applied after
        its result (OrderedRedisManager.rooms_admitted), so none is lost to the race.
        """
        if not rooms:
            return await self._connections.admission(sid=sid, user_id=user_id)
        self._manager.rooms_admission_started(sid, user_id)
        try:
            admitted = await self._connections.admission(
                user_id, sid, rooms=True, delivered=self._manager.last_delivered
            )
        except BaseException:
            self._manager.rooms_admission_abandoned(sid, user_id)
            raise
        if admitted.decision is not Admission.ADMITTED:
            self._manager.rooms_admission_abandoned(sid, user_id)
        return admitted

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
        if self._typing is not None:
            self._typing.forget(sid)
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

    async def on_typing(self, sid: str, data: Any = None) -> dict[str, Any]:
        """A member is typing in a room (docs/ROOM_STATE.md, "Typing").

        The return value is the acknowledgement, sent when the client asked for one:
        `{"ok": true}`, or `{"error": "not_member" | "rate_limited" | "invalid" |
        "unavailable"}`. A legacy connection is a member of no room here.
        """
        if self._typing is None:
            return {"error": "unavailable"}
        return await self._typing.typed(sid, data)
