"""Ordered, gap-free delivery on top of python-socketio's Redis manager.

Stock `AsyncRedisManager` emits whatever arrives on the channel: a message published
while this gateway was re-subscribing is silently gone. This subclass keeps the
manager's protocol and API and adds, for packets from the outbox relay (they carry
`seq = {id, prev}`):

* duplicates (a relay retry, a Redis restart) are dropped by id;
* a gap (`prev` above the last id delivered here) is filled from the history stream
  before the new message goes out; if the stream no longer holds the gap, every local
  client is disconnected so it reconnects with `lastId` and is told to refetch;
* a periodic check catches up after a quiet period, when no later message would
  reveal the gap;
* clients that reconnect with `lastId` get the messages they missed, in order, before
  any live one, then a `recovered` event.

One lock serializes delivery and gap filling, so each client sees ids in increasing
order. A recovery does not hold it while it replays: under the lock, 20 reconnects
with an old `lastId` held live delivery for every client of the replica for a third of
a second. The recovering client is skipped by live delivery (it gets those messages
from the history stream instead) and catches up in rounds without the lock, each
round up to the newest id delivered live when it began; only the last, short round
(what arrived during the previous one, usually nothing) runs under the lock, where it
hands the client over to live delivery after the `recovered` event. At most
`max_concurrent_replays` recoveries run at once on a replica, so a reconnect storm
queues instead of crowding the event loop; each yields to it every `REPLAY_BATCH`
messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from services.realtime_service.history import HistoryReader
from services.realtime_service.metrics import (
    FANOUT_DELIVERIES,
    FANOUT_MESSAGES,
    GAP_FILLS,
    RECOVERIES,
    SLOW_CONSUMER_DISCONNECTS,
)
from services.realtime_service.packet_queue import discard_queued
from services.realtime_service.rooms import ImpliedSidRooms
from services.realtime_service.transport import FastEngineIOServer, FastSocket
from services.shared.messages import NEW_MESSAGE_EVENT
from services.shared.metrics import REDIS_RECONNECTS
from services.shared.redis_contract import sequence_of
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RECOVERED_EVENT = "recovered"
# Messages a recovery writes before letting the loop run something else.
REPLAY_BATCH = 100
# Catch-up rounds outside the delivery lock before the last one, under it. Each round
# covers what was delivered live during the one before, so the gap shrinks fast.
UNLOCKED_ROUNDS = 4


class OrderedRedisManager(ImpliedSidRooms, socketio.AsyncRedisManager):  # type: ignore[misc]
    """`AsyncRedisManager` with gap detection, duplicate suppression and replay.

    It also answers sid rooms without storing them (`ImpliedSidRooms`).
    """

    def __init__(
        self,
        url: str,
        channel: str,
        history: HistoryReader,
        gap_check_seconds: float,
        max_queued_packets: int,
        max_concurrent_replays: int = 4,
    ) -> None:
        super().__init__(
            url, channel=channel, redis_options={"redis_connect_func": self._on_redis_connection}
        )
        self._history = history
        self._max_queued = max_queued_packets
        self._replays = asyncio.Semaphore(max(1, max_concurrent_replays))
        self._gap_check_seconds = gap_check_seconds
        self._lock = asyncio.Lock()
        # None until known: the stream was empty when this gateway started (new
        # deployment, or Redis restarted), so there is nothing to measure gaps against.
        self._last_delivered: int | None = None
        self._started_ms = 0
        self._recovering: set[str] = set()
        # Clients that reconnected ahead of this gateway: skip ids they already have.
        self._floors: dict[str, int] = {}
        self._gap_task: asyncio.Task[None] | None = None
        self._connected_once = False
        self._initialized = False

    async def start(self) -> None:
        """Start from the stream's newest id and begin the periodic gap check."""
        self._started_ms = int(time.time() * 1000)
        self._last_delivered = await self._history.tail_id() or None
        self._gap_task = asyncio.create_task(self._check_gaps_forever(), name="gap-check")

    async def stop(self) -> None:
        """End the gap check and python-socketio's pub/sub listener (started by `initialize`)."""
        await cancel_and_wait(self._gap_task)
        await cancel_and_wait(getattr(self, "thread", None))

    async def close(self) -> None:
        """Close the channel's Redis connections (at server shutdown).

        Called once the listener task has been cancelled. python-socketio's manager leaves
        them open (its `redis` and `pubsub`).
        """
        pubsub, redis = getattr(self, "pubsub", None), getattr(self, "redis", None)
        if pubsub is not None:
            await pubsub.aclose()
        if redis is not None:
            await redis.aclose()

    def initialize(self) -> None:
        """python-socketio's manager start (the channel listener), once.

        The gateway calls it at start-up so that it listens before the first client;
        python-socketio calls it again at the first client, which then does nothing.
        """
        if self._initialized:
            return
        self._initialized = True
        super().initialize()

    @property
    def eio(self) -> FastEngineIOServer:
        """The server's Engine.IO server (the gateway's own, see app.GatewayServer)."""
        eio: FastEngineIOServer = self.server.eio
        return eio

    async def _on_redis_connection(self, connection: Any) -> None:
        """redis-py's connection callback: count the manager's connections after the first.

        The manager opens a new connection when its subscription was lost (each one may
        have missed messages, which the gap check covers) and once for its first
        publish (rare: a disconnect of a client on another replica).
        """
        if self._connected_once:
            REDIS_RECONNECTS.labels("realtime", "subscriber").inc()
        self._connected_once = True
        await connection.on_connect()

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        seq = sequence_of(message)
        if seq is None:  # not from the relay: python-socketio's own behaviour
            await super()._handle_emit(message)
            return
        message_id, prev = seq
        async with self._lock:
            last = self._last_delivered
            if last is not None and message_id <= last:
                return  # a duplicate: relay retry or republish after a Redis restart
            if last is not None and prev > last:
                await self._fill_gap(last, upto=prev)
            await self._deliver(message_id, message["data"][0])

    async def _fill_gap(self, after: int, upto: int) -> None:
        """Deliver what was missed up to `upto`, or reset clients when it is gone."""
        missed = await self._history.replay(after, upto)
        if missed is None:
            log.warning(
                "history gap not recoverable; asking clients to reconnect",
                extra={"after": after, "upto": upto},
            )
            GAP_FILLS.labels("reset_clients").inc()
            await self._reconnect_all_clients()
            self._last_delivered = upto
            return
        GAP_FILLS.labels("filled").inc()
        log.info("filled a delivery gap", extra={"count": len(missed), "upto": upto})
        for entry in missed:
            await self._deliver(entry.id, entry.wire)

    async def _deliver(self, message_id: int, wire: dict[str, Any]) -> None:
        skip = set(self._recovering)
        for sid, floor in list(self._floors.items()):
            if message_id <= floor:
                skip.add(sid)
            else:
                del self._floors[sid]
        delivered = await self._broadcast(NEW_MESSAGE_EVENT, wire, skip)
        self._last_delivered = message_id
        FANOUT_MESSAGES.inc()
        FANOUT_DELIVERIES.inc(delivered)

    async def _broadcast(self, event: str, data: Any, skip: set[str]) -> int:
        """Send one event to every local client of `/`; return how many got it.

        The stock manager starts one task per recipient per broadcast. Here the packet
        is encoded once, down to the WebSocket frame bytes; an idle WebSocket client gets
        those bytes written to its connection right away (transport.py), any other
        client gets the same packet object on its Engine.IO queue, which its writer
        (WebSocket) or next poll (long-polling) drains in order.
        A client whose queue is already `max_queued_packets` deep is not keeping up: it
        is disconnected (it reconnects and recovers with lastId) instead of letting its
        backlog grow without bound.
        """
        if not self.rooms.get("/", {}).get(None):
            return 0  # no client here: nothing to encode (a replica still tracks the ids)
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace="/", data=[event, data]
        ).encode()
        if not isinstance(encoded, str):  # binary payloads keep python-socketio's path
            await self.emit(event, data, namespace="/", skip_sid=list(skip), ignore_queue=True)
            return 0
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = self.eio.frames.text_frame(eio_pkt.encode())
        sockets = self.eio.sockets
        delivered = 0
        for sid, eio_sid in self.get_participants("/", None):
            if sid not in skip and self._write(sockets.get(eio_sid), eio_pkt, frame):
                delivered += 1
        return delivered

    def _write(self, socket: Any, eio_pkt: eio_packet.Packet, frame: bytes) -> bool:
        """Hand one encoded packet to a client's connection; False if it cannot take it."""
        if socket is None or socket.closed or socket.closing:
            return False
        if isinstance(socket, FastSocket) and socket.write_now(frame):
            return True
        if socket.queue.qsize() >= self._max_queued:
            self._drop_slow_consumer(socket)
            return False
        socket.queue.put_nowait(eio_pkt)
        return True

    def _send_to(self, sid: str, event: str, data: Any) -> bool:
        """Send one event to one client of `/` at once (in order with what it was sent before)."""
        eio_sid = self.eio_sid_from_sid(sid, "/")
        socket = self.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if socket is None:
            return False
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace="/", data=[event, data]
        ).encode()
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        return self._write(socket, eio_pkt, self.eio.frames.text_frame(eio_pkt.encode()))

    def _drop_slow_consumer(self, socket: Any) -> None:
        """Discard a stalled client's backlog and close its connection."""
        SLOW_CONSUMER_DISCONNECTS.inc()
        log.warning("disconnecting slow consumer", extra={"eio_sid": socket.sid})
        close_transport(socket, flush=False)

    async def _check_gaps_forever(self) -> None:
        while True:
            await asyncio.sleep(self._gap_check_seconds)
            try:
                await self._check_gap()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: the next round retries
                log.warning("gap check failed", extra={"error": repr(exc)})

    async def _check_gap(self) -> None:
        """Catch up from the stream when its newest id is past the last one delivered."""
        tail = await self._history.tail_id()
        async with self._lock:
            last = self._last_delivered
            if last is not None:
                if tail > last:
                    await self._fill_gap(last, upto=tail)
            elif tail:
                # No baseline yet: what was committed since this gateway started is new
                # to every client connected here.
                for entry in await self._history.committed_since(self._started_ms):
                    await self._deliver(entry.id, entry.wire)
                self._last_delivered = max(tail, self._last_delivered or 0)

    async def _reconnect_all_clients(self) -> None:
        """Close every local connection; clients reconnect and recover with lastId."""
        for socket in list(self.server.eio.sockets.values()):
            close_transport(socket, flush=True)

    def begin_recovery(self, sid: str) -> None:
        """Hold live messages back from `sid` until `recover` has replayed what it missed."""
        self._recovering.add(sid)

    async def recover(self, sid: str, last_id: int) -> None:
        """Replay what `sid` missed after `last_id`, then tell it whether that was complete.

        Live delivery skips `sid` until the handover at the end, and everything it
        skipped is in the history stream, so the rounds below leave no gap, and since
        each starts where the one before ended, no duplicate.
        """
        cursor = last_id  # everything up to here has been sent (or the client had it)
        try:
            async with self._replays:
                for _ in range(UNLOCKED_ROUNDS):
                    if not self.is_connected(sid, "/"):
                        return  # gone while waiting its turn or replaying: nobody to send to
                    upto = self._last_delivered
                    if upto is None or upto <= cursor:
                        break
                    if not await self._replay_to(sid, cursor, upto):
                        return
                    cursor = upto
                async with self._lock:
                    await self._finish_recovery(sid, last_id, cursor)
        except Exception:
            log.exception("recovery failed", extra={"sid": sid})
            self._send_to(sid, RECOVERED_EVENT, {"recovered": False, "lastId": str(cursor)})
        finally:
            self._recovering.discard(sid)

    async def _replay_to(self, sid: str, after: int, upto: int) -> bool:
        """Send `sid` the messages `after < _id <= upto`; False if the stream lost some.

        On False the client is told `recovered: false`.
        """
        missed = await self._history.replay(after, upto)
        if missed is None:
            RECOVERIES.labels("false").inc()
            self._send_to(sid, RECOVERED_EVENT, {"recovered": False, "lastId": str(after)})
            return False
        for index, entry in enumerate(missed, 1):
            self._send_to(sid, NEW_MESSAGE_EVENT, entry.wire)
            if index % REPLAY_BATCH == 0:
                await asyncio.sleep(0)  # let live delivery and other clients' traffic through
        return True

    async def _finish_recovery(self, sid: str, last_id: int, cursor: int) -> None:
        """Under the delivery lock: the last round, then `recovered` and the handover to live."""
        upto = self._last_delivered
        if upto is None:  # nothing delivered yet: replay up to what the stream has
            upto = await self._history.tail_id()
            self._floors[sid] = upto
        if upto > cursor:
            if not await self._replay_to(sid, cursor, upto):
                return
            cursor = upto
        if last_id > upto:
            self._floors[sid] = last_id
        RECOVERIES.labels("true").inc()
        self._send_to(sid, RECOVERED_EVENT, {"recovered": True, "lastId": str(cursor)})
        self._recovering.discard(sid)

    def forget(self, sid: str) -> None:
        self._recovering.discard(sid)
        self._floors.pop(sid, None)


def close_transport(socket: Any, *, flush: bool) -> None:
    """Close a client's connection so that it reconnects, without waiting on it.

    No Engine.IO CLOSE packet: the official clients treat that as a deliberate close
    and stay away, while a dropped transport makes them reconnect (and recover with
    lastId). With `flush`, what is already queued is written first; without, a
    stalled client's backlog is discarded and its WebSocket connection dropped at
    once (a CLOSE frame would wait behind bytes it does not read). The `None` ends the
    WebSocket writer (which then closes the socket from our side) or answers a
    pending long-poll.
    """
    if not flush:
        discard_queued(socket.queue)
        if isinstance(socket, FastSocket):
            socket.abort_websocket()
    socket.server.start_background_task(socket.close, wait=False, abort=True)
    socket.queue.put_nowait(None)
