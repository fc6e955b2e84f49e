"""Ordered, gap-free delivery on top of python-socketio's Redis manager.

Stock `AsyncRedisManager` emits whatever arrives on the channel: a message published
while this gateway was re-subscribing is silently gone. This subclass keeps the
manager's protocol and API and adds, for packets from the outbox relay (they carry
`seq = {id, prev}` and arrive in batch packets, redis_contract.py):

* duplicates (a relay retry, a Redis restart) are dropped by id;
* a gap (`prev` above the last id delivered here) is filled from the history stream
  before the new message goes out; if the stream no longer holds the gap, every local
  client is disconnected so it reconnects with `lastId` and is told to refetch;
* a periodic check catches up after a quiet period, when no later message would
  reveal the gap;
* clients that reconnect with `lastId` get the messages they missed, in order, before
  any live one, then a `recovered` event;
* entries of every room and room events share the order (redis_contract.py): a
  legacy client gets the global room's messages as `getAllmessages`, a rooms-aware
  one (`auth: {rooms: true}`) `message` and the room events of its user's rooms, and a
  membership change is applied to the python-socketio rooms at exactly its place in
  the order (docs/DELIVERY.md, "Rooms").

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
from collections.abc import Iterable
from typing import Any

import orjson
import socketio
from engineio import packet as eio_packet

from services.realtime_service.history import HistoryReader
from services.realtime_service.metrics import (
    FANOUT_DELIVERIES,
    FANOUT_MESSAGES,
    GAP_FILLS,
    RECOVERIES,
    SLOW_CONSUMER_DISCONNECTS,
)
from services.realtime_service.packet_queue import discard_queued
from services.realtime_service.rooms import (
    ImpliedSidRooms,
    Memberships,
    UserRooms,
    changes_membership,
    legacy_message,
    members_event,
    room_message,
    subject_event,
)
from services.realtime_service.transport import FastEngineIOServer, FastSocket
from services.shared.messages import NEW_MESSAGE_EVENT
from services.shared.metrics import REDIS_RECONNECTS
from services.shared.redis_contract import (
    GLOBAL_MESSAGE,
    EntryInfo,
    HistoryEntry,
    entry_info_of,
    relayed_packets,
    sequence_of,
)
from services.shared.rooms import GLOBAL_ROOM_ID, JOINED, MESSAGE, MESSAGE_EVENT, is_global
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RECOVERED_EVENT = "recovered"
# Messages a recovery writes before letting the loop run something else.
REPLAY_BATCH = 100
# Event text a batch from the relay may encode before delivery lets the loop write it
# out: at chat-sized messages a whole batch goes out in one write per client.
YIELD_AFTER_BYTES = 64 * 1024
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
        # Rooms (docs/DELIVERY.md, "Rooms"): the rooms-aware sockets (admitted or being
        # admitted; legacy delivery skips them), whose user they are, each user's rooms
        # on this replica, and the membership events delivered while a socket's
        # admission was in flight (user -> sid -> events), applied after its result.
        self._aware: set[str] = set()
        self._user_of: dict[str, str] = {}
        self._users: dict[str, UserRooms] = {}
        self._admitting: dict[str, dict[str, list[HistoryEntry]]] = {}
        self._bytes_out = 0  # event text encoded since delivery last let the loop run
        self._tail_seen = 0  # the stream's newest id at the previous gap check

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
        packets = relayed_packets(message)
        if packets is None:  # not from the relay: python-socketio's own behaviour
            await super()._handle_emit(message)
            return
        async with self._lock:  # once for a whole batch: its frames go out together
            for packet in packets:
                await self._take_relayed(packet)
                if self._bytes_out >= YIELD_AFTER_BYTES:
                    # Large messages: let the frames so far go out, and the connections
                    # that cannot take them push back, before the next ones are written.
                    self._bytes_out = 0
                    await asyncio.sleep(0)

    async def _take_relayed(self, packet: dict[str, Any]) -> None:
        """Deliver one relay packet in order: drop a duplicate, fill a gap first."""
        seq = sequence_of(packet)
        if seq is None:
            log.warning("relay packet without seq ignored")
            return
        message_id, prev = seq
        last = self._last_delivered
        if last is not None and message_id <= last:
            return  # a duplicate: relay retry or republish after a Redis restart
        if last is not None and prev > last:
            await self._fill_gap(last, upto=prev)
        await self._deliver(message_id, packet["data"][0], entry_info_of(packet))

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
            await self._deliver(entry.id, entry.wire, entry.info)

    @property
    def last_delivered(self) -> int:
        """The id of the newest entry delivered here (0 before the first)."""
        return self._last_delivered or 0

    async def _deliver(
        self, entry_id: int, payload: dict[str, Any], info: EntryInfo = GLOBAL_MESSAGE
    ) -> None:
        """Deliver one entry (a message or a room event) to the clients of this replica."""
        entry = HistoryEntry(entry_id, 0, payload, info)
        skip = set(self._recovering)
        for sid, floor in list(self._floors.items()):
            if entry.id <= floor:
                skip.add(sid)
            else:
                del self._floors[sid]
        if entry.info.kind == MESSAGE:
            delivered = await self._deliver_message(entry, skip)
        else:
            delivered = await self._deliver_room_event(entry, skip)
        self._last_delivered = entry.id
        FANOUT_MESSAGES.inc()
        FANOUT_DELIVERIES.inc(delivered)

    async def _deliver_message(self, entry: HistoryEntry, skip: set[str]) -> int:
        """A global-room message: `getAllmessages` to legacy clients, `message` to the others.

        A message of another room: `message` to the members of that room (its
        python-socketio room). Each event is encoded once for all of its recipients.
        """
        room = entry.info.room
        if not is_global(room):
            return await self._broadcast(MESSAGE_EVENT, room_message(entry), skip, room)
        delivered = await self._broadcast(
            NEW_MESSAGE_EVENT, legacy_message(entry), skip, exclude=self._aware
        )
        return delivered + await self._broadcast(
            MESSAGE_EVENT, room_message(entry), skip, GLOBAL_ROOM_ID
        )

    async def _deliver_room_event(self, entry: HistoryEntry, skip: set[str]) -> int:
        """A room event: the membership change first, at exactly its place in the order.

        Then the event to the member it concerns (`roomJoined`, `roomLeft`) and to the
        room's members as they are after the change (`memberChanged`, `roomUpdated`):
        a member who left gets nothing of the room after their `roomLeft`.
        """
        subject = entry.info.subject
        if changes_membership(entry):
            assert subject is not None
            self._change_membership(subject, entry)
        delivered = 0
        to_subject = subject_event(entry)
        state = self._users.get(subject) if subject is not None else None
        if to_subject is not None and state is not None:
            delivered += self._send_to_sids(state.sids - skip, *to_subject)
        to_members = members_event(entry)
        if to_members is not None:
            delivered += await self._broadcast(*to_members, skip, entry.info.room)
        return delivered

    def _change_membership(self, user_id: str, entry: HistoryEntry) -> None:
        """Enter or leave the room for every rooms-aware socket of `user_id` on this replica."""
        for events in self._admitting.get(user_id, {}).values():
            events.append(entry)  # applied after that admission's result (rooms_admitted)
        state = self._users.get(user_id)
        if state is None or not state.apply(entry):
            return
        room = entry.info.room
        for sid in state.sids:
            if self._member("/", sid) is None:
                continue
            if entry.info.kind == JOINED:
                self.basic_enter_room(sid, "/", room)
            else:
                self.basic_leave_room(sid, "/", room)

    # -- rooms-aware admission (called by the namespace around UserConnections.admission)

    def rooms_admission_started(self, sid: str, user_id: str) -> None:
        """`sid` of `user_id` is being admitted as rooms-aware: buffer its membership events."""
        self._aware.add(sid)
        self._admitting.setdefault(user_id, {})[sid] = []

    def rooms_admission_abandoned(self, sid: str, user_id: str) -> None:
        """The admission was refused or failed: forget it."""
        self._admission_done(sid, user_id)
        self._aware.discard(sid)

    def rooms_admitted(self, sid: str, user_id: str, memberships: Memberships) -> None:
        """Put `sid` in its user's rooms: as this replica has them, or from `memberships`.

        A user who already has a rooms-aware socket here has their rooms kept in step by
        delivery. Otherwise the rooms are the admission's hash plus the membership events
        delivered while it was in flight that the hash did not reflect yet (id above its
        `@`). No await in here: nothing is delivered between the two.
        """
        buffered = self._admission_done(sid, user_id)
        if self._member("/", sid) is None:  # gone while it was being admitted
            self._aware.discard(sid)
            return
        state = self._users.get(user_id)
        if state is None:
            state = UserRooms(dict(memberships.rooms), memberships.applied)
            for entry in buffered:
                state.apply(entry)
            self._users[user_id] = state
        state.sids.add(sid)
        self._user_of[sid] = user_id
        self.basic_enter_room(sid, "/", GLOBAL_ROOM_ID)
        for room in state.rooms:
            self.basic_enter_room(sid, "/", room)
        if sid in self._recovering:
            return  # its replay sends these in order
        for entry in buffered:
            event = subject_event(entry)
            if entry.id > memberships.applied and event is not None:
                self._send_to(sid, *event)

    def rooms_unknown(self, sid: str, user_id: str) -> None:
        """`sid` was admitted without its complete memberships: it is put in no room.

        It is held back from delivery until it is sent to reconnect (namespace.py). No
        room map is built from the incomplete read either: the user's next connections
        here would be given it.
        """
        self._admission_done(sid, user_id)

    def _admission_done(self, sid: str, user_id: str) -> list[HistoryEntry]:
        admitting = self._admitting.get(user_id, {})
        buffered = admitting.pop(sid, [])
        if not admitting:
            self._admitting.pop(user_id, None)
        return buffered

    def rooms_of(self, sid: str) -> list[str] | None:
        """The rooms a rooms-aware socket is in (the global room first); None for others."""
        user_id = self._user_of.get(sid)
        state = self._users.get(user_id) if user_id is not None else None
        if state is None:
            return None
        return [GLOBAL_ROOM_ID, *state.rooms]

    # -- ephemeral events: not in the order, never replayed (read state, docs/ROOM_STATE.md)

    def send_to_user(self, user_id: str, event: str, data: Any) -> int:
        """Send one event to each rooms-aware socket of `user_id` here; return how many got it."""
        state = self._users.get(user_id)
        return 0 if state is None else self._send_to_sids(state.sids, event, data)

    def holds_room(self, room: str) -> bool:
        """True when a socket here is in `room` (a rooms-aware member of it)."""
        return bool(self.rooms.get("/", {}).get(room))

    async def send_to_room(self, room: str, event: str, data: Any) -> int:
        """Send one event to the sockets here that are in `room`; return how many got it."""
        return await self._broadcast(event, data, set(), room)

    async def _broadcast(
        self,
        event: str,
        data: Any,
        skip: set[str],
        room: str | None = None,
        exclude: set[str] | None = None,
    ) -> int:
        """Send one event to every local client of `/` in `room` (None: all of them).

        Returns how many got it; clients in `skip` or `exclude` do not.

        The stock manager starts one task per recipient per broadcast. Here the packet
        is encoded once, down to the WebSocket frame bytes; an idle WebSocket client gets
        those bytes written to its connection right away (transport.py), any other
        client gets the same packet object on its Engine.IO queue, which its writer
        (WebSocket) or next poll (long-polling) drains in order.
        A client whose queue is already `max_queued_packets` deep is not keeping up: it
        is disconnected (it reconnects and recovers with lastId) instead of letting its
        backlog grow without bound.
        """
        if not self.rooms.get("/", {}).get(room):
            return 0  # no client here: nothing to encode (a replica still tracks the ids)
        outgoing = self._outgoing(event, data)
        if outgoing is None:  # binary payloads keep python-socketio's path
            skipped = list(skip | (exclude or set()))
            await self.emit(event, data, namespace="/", room=room, skip_sid=skipped)
            return 0
        eio_pkt, frame = outgoing
        sockets = self.eio.sockets
        excluded = exclude if exclude is not None else set()
        delivered = 0
        for sid, eio_sid in self.get_participants("/", room):
            if (
                sid not in skip
                and sid not in excluded
                and self._write(sockets.get(eio_sid), eio_pkt, frame)
            ):
                delivered += 1
        return delivered

    def _outgoing(self, event: str, data: Any) -> tuple[eio_packet.Packet, bytes] | None:
        """One event to `/` encoded once for every recipient: the Engine.IO packet a
        queue takes and the WebSocket frame an idle connection is written; None when
        the data holds bytes (python-socketio sends those as binary attachments).
        """
        text = event_text(event, data)
        if text is None:
            return None
        self._bytes_out += len(text)
        return eio_packet.Packet(eio_packet.MESSAGE, text[1:]), self.eio.frames.text_frame(text)

    def _outgoing_text(self, event: str, data: Any) -> tuple[eio_packet.Packet, bytes]:
        """`_outgoing` for the gateway's own events, whose data is JSON (never bytes)."""
        outgoing = self._outgoing(event, data)
        if outgoing is None:
            raise TypeError(f"{event!r}: binary data where JSON was expected")
        return outgoing

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
        return self._send_to_sids([sid], event, data) == 1

    def _send_to_sids(self, sids: Iterable[str], event: str, data: Any) -> int:
        """Send one event, encoded once, to each of `sids`; return how many got it."""
        sockets = [
            self.eio.sockets.get(eio_sid)
            for eio_sid in (self._member("/", sid) for sid in sids)
            if eio_sid is not None
        ]
        if not sockets:
            return 0
        eio_pkt, frame = self._outgoing_text(event, data)
        return sum(1 for socket in sockets if self._write(socket, eio_pkt, frame))

    def send_to_rooms(self, event: str, data: Any, rooms: list[str], but_user: str) -> int:
        """Send an ephemeral event (presence, typing) to the local members of `rooms`.

        Each connection in any of the rooms gets it once, encoded once for all, except
        the rooms-aware connections of `but_user` (the user it is about). Not part of
        the order: nothing waits for the delivery lock, nothing is replayed.
        """
        stored = self.rooms.get("/", {})
        present = [room for room in rooms if stored.get(room)]
        if not present:
            return 0
        state = self._users.get(but_user)
        excluded = state.sids if state is not None else set()
        eio_pkt, frame = self._outgoing_text(event, data)
        sockets = self.eio.sockets
        delivered = 0
        for sid, eio_sid in self.get_participants("/", present):
            if sid not in excluded and self._write(sockets.get(eio_sid), eio_pkt, frame):
                delivered += 1
        return delivered

    def _drop_slow_consumer(self, socket: Any) -> None:
        """Discard a stalled client's backlog and close its connection, once.

        The close completes in the background: the rest of a batch still finds the
        socket open and its queue filling again, and must not count it twice.
        """
        if getattr(socket, "dropped_as_slow", False):
            return
        socket.dropped_as_slow = True
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
        """Catch up from the stream on what it held a round ago and is still not delivered.

        The stream's newest id is usually a little ahead of delivery: those entries are
        on their way on the channel. Only what was in the stream at the previous check
        and has not arrived since is missing (a publish lost while the subscription was
        down, with no later message to reveal it), so a busy gateway that runs behind
        does not mistake its own backlog for a gap, nor, past `REPLAY_MAX_MESSAGES`,
        send every client to reconnect.
        """
        tail = await self._history.tail_id()
        async with self._lock:
            last = self._last_delivered
            if last is not None:
                overdue, self._tail_seen = self._tail_seen, tail
                if overdue > last:
                    await self._fill_gap(last, upto=overdue)
            elif tail:
                # No baseline yet: what was committed since this gateway started is new
                # to every client connected here.
                for entry in await self._history.committed_since(self._started_ms):
                    await self._deliver(entry.id, entry.wire, entry.info)
                self._last_delivered = max(tail, self._last_delivered or 0)

    def reconnect_client(self, sid: str) -> None:
        """Close one client's connection; it reconnects and recovers with lastId."""
        eio_sid = self.eio_sid_from_sid(sid, "/")
        socket = self.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if socket is not None and not socket.closed and not socket.closing:
            close_transport(socket, flush=True)

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
            rooms = self.rooms_of(sid)
            self._send_to(sid, RECOVERED_EVENT, self._recovered(sid, False, cursor, rooms))
        finally:
            self._recovering.discard(sid)

    async def _replay_to(self, sid: str, after: int, upto: int) -> bool:
        """Send `sid` the messages `after < _id <= upto`; False if the stream lost some.

        On False the client is told `recovered: false`.
        """
        missed = await self._history.replay(after, upto)
        if missed is None:
            RECOVERIES.labels("false").inc()
            refetch = await self._rooms_to_refetch(sid, after)
            self._send_to(sid, RECOVERED_EVENT, self._recovered(sid, False, after, refetch))
            return False
        for index, entry in enumerate(missed, 1):
            self._replay_entry(sid, entry)
            if index % REPLAY_BATCH == 0:
                await asyncio.sleep(0)  # let live delivery and other clients' traffic through
        return True

    def _replay_entry(self, sid: str, entry: HistoryEntry) -> None:
        """Send `sid` what live delivery sent it of `entry`, had it been connected.

        A legacy client gets the global room's messages; a rooms-aware one the messages
        and room events of its user's rooms as they are now, and the events about its
        user (the same filter as live delivery, see `UserRooms.receives`).
        """
        info = entry.info
        user_id = self._user_of.get(sid)
        if user_id is None:
            if info.kind == MESSAGE and is_global(info.room):
                self._send_to(sid, NEW_MESSAGE_EVENT, legacy_message(entry))
            return
        state = self._users[user_id]
        if info.kind == MESSAGE:
            if state.receives(entry):
                self._send_to(sid, MESSAGE_EVENT, room_message(entry))
            return
        to_subject = subject_event(entry)
        if to_subject is not None and info.subject == user_id:
            self._send_to(sid, *to_subject)
        to_members = members_event(entry)
        if to_members is not None and state.receives(entry):
            self._send_to(sid, *to_members)

    async def _rooms_to_refetch(self, sid: str, after: int) -> list[str] | None:
        """The rooms of a rooms-aware `sid` with messages after `after` (all if unknown)."""
        rooms = self.rooms_of(sid)
        if rooms is None:
            return None
        try:
            return await self._history.rooms_with_messages_after(rooms, after)
        except Exception as exc:  # noqa: BLE001 - Redis away: refetch every room
            log.warning("room tails unavailable; refetch all rooms", extra={"error": repr(exc)})
            return rooms

    def _recovered(
        self, sid: str, recovered: bool, last_id: int, refetch: list[str] | None
    ) -> dict[str, Any]:
        """The `recovered` event; a rooms-aware client's also says which rooms to refetch."""
        event: dict[str, Any] = {"recovered": recovered, "lastId": str(last_id)}
        if sid in self._user_of:
            event["refetch"] = refetch if refetch is not None and not recovered else []
        return event

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
        self._send_to(sid, RECOVERED_EVENT, self._recovered(sid, True, cursor, []))
        self._recovering.discard(sid)

    def forget(self, sid: str) -> None:
        """A client left: drop what this manager kept about it (its rooms go with it)."""
        self._recovering.discard(sid)
        self._floors.pop(sid, None)
        self._aware.discard(sid)
        user_id = self._user_of.pop(sid, None)
        state = self._users.get(user_id) if user_id is not None else None
        if state is not None:
            state.sids.discard(sid)
            if not state.sids:
                del self._users[user_id]  # type: ignore[arg-type]


def event_text(event: str, data: Any) -> str | None:
    """The Engine.IO text of a Socket.IO EVENT to `/`: "42" and the JSON of [event, data].

    Exactly what python-socketio's packet class (orjson, services/shared/jsonenc.py) and
    python-engineio make of a text event, without the packet objects or the walk of the
    data looking for bytes: orjson refuses bytes itself, and then this returns None.
    Profiling the rooms load put a tenth of a replica's Python time in those steps.
    """
    try:
        return "42" + orjson.dumps([event, data]).decode()
    except TypeError:
        return None


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
