"""python-socketio's room bookkeeping, with each client's own room implied instead of stored.

python-socketio puts every client in a room named after its sid, stored like any room:
a bidict of one entry, about 600 bytes per connection. The namespace's member list
(the room `None`, sid -> Engine.IO sid) already holds the same pair, so this mixin
answers the sid room from it; every other room is stored as before, and the manager's
methods (`get_participants`, `get_rooms`, `enter_room`, ...) keep their results. One
difference: a client cannot leave its own room, which lasts as long as its connection
(leaving it in python-socketio makes the client unreachable by its sid; nothing here
does that).

It also holds what the gateway knows of chat rooms (docs/ROOMS.md): a rooms-aware
socket is in one python-socketio room per chat room of its user (named by the room
id, the global room's included), and `UserRooms` keeps each user's rooms on this
replica in step with the membership events delivered here (docs/DELIVERY.md, "Rooms").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from services.shared.redis_contract import HistoryEntry
from services.shared.rooms import (
    DELETED,
    EDITED,
    JOINED,
    LEFT,
    MEMBER_CHANGED_EVENT,
    MESSAGE_DELETED_EVENT,
    MESSAGE_EDITED_EVENT,
    REACTION,
    REACTIONS_CHANGED_EVENT,
    ROLE,
    ROOM_JOINED_EVENT,
    ROOM_LEFT_EVENT,
    ROOM_UPDATED_EVENT,
    UPDATED,
    is_global,
)


class ImpliedSidRooms:
    """Mixin for a python-socketio manager (put it before the manager class).

    A client's own room is implied by its membership of the namespace instead of being
    stored, and the manager keeps which rooms each client entered, so that a
    disconnect leaves those instead of testing every room of the namespace: with
    1,000 chat rooms that test cost a gateway a third of a millisecond per
    disconnect, a sixth of its CPU under 100 connects and disconnects a second.
    """

    rooms: dict[str, dict[Any, Any]]  # namespace -> room -> bidict(sid -> eio_sid)
    # python-socketio's bookkeeping around a disconnect (public attributes of its manager).
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (namespace, sid) -> the rooms it is in, the namespace's own room (None) included.
        self._entered: dict[tuple[str, str], set[Any]] = {}

    def _member(self, namespace: str, sid: Any) -> Any:
        """The Engine.IO sid of `sid` if it is connected to `namespace`, else None."""
        members = self.rooms.get(namespace, {}).get(None)
        return members.get(sid) if members is not None and isinstance(sid, str) else None

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> Any:
        if room is not None and room == sid and self._member(namespace, sid) is not None:
            return None  # a client's own room: implied by its membership of the namespace
        entered = super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._entered.setdefault((namespace, sid), set()).add(room)
        return entered

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self._entered.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._entered[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **_kwargs: Any) -> None:
        """python-socketio's `basic_disconnect`, leaving the rooms `sid` entered.

        The rest is python-socketio's bookkeeping as it does it (its callbacks and
        pending lists); tests/unit/test_rooms.py compares the two.
        """
        if namespace not in self.rooms:
            return
        for room in list(self._entered.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_participants(self, namespace: str, room: Any) -> Iterator[tuple[str, str]]:
        """The (sid, eio_sid) pairs in `room` (or in any of a list of rooms), as python-socketio."""
        names = room if hasattr(room, "__len__") and not isinstance(room, str) else [room]
        stored = self.rooms.get(namespace, {})
        participants: dict[str, str] = {}
        for name in names:
            if name in stored:
                participants.update(stored[name].items())
            else:
                eio_sid = self._member(namespace, name)
                if eio_sid is not None:
                    participants[name] = eio_sid
        yield from participants.items()

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        rooms: list[Any] = super().get_rooms(sid, namespace)  # type: ignore[misc]
        if self._member(namespace, sid) is not None and sid not in rooms:
            rooms.insert(0, sid)
        return rooms


# --- Chat rooms: which of a replica's sockets are in which room ----------------------

APPLIED_FIELD = "@"  # the membership hash's field: the newest event of the user applied


@dataclass(frozen=True)
class Memberships:
    """A user's membership hash as read at admission (`P:rooms:<user>`, redis_contract.py).

    `rooms` maps room id -> the id of the event that added the user (0 when the relay
    rebuilt the hash and no longer knows it), `applied` is the hash's `@`: the newest
    membership event of the user it reflects. `complete` is False when the relay's
    mark was missing or behind (Redis lost data and the hashes were being rebuilt).
    """

    rooms: dict[str, int]
    applied: int
    complete: bool = True

    @classmethod
    def from_hash(cls, fields: dict[str, str], complete: bool = True) -> Memberships:
        rooms: dict[str, int] = {}
        applied = 0
        for name, value in fields.items():
            number = int(value) if value.isdigit() else 0
            if name == APPLIED_FIELD:
                applied = number
            else:
                rooms[name] = number
        return cls(rooms, applied, complete)


# Redis unreachable at admission: the global room only.
NO_MEMBERSHIPS: Final = Memberships({}, 0, complete=False)


@dataclass
class UserRooms:
    """One user's rooms as this replica delivers them, shared by all of their rooms-aware sockets.

    Kept in step with the membership events this replica delivers, in order; `applied` is
    the newest one reflected, so an event the admission's hash already contained is
    not applied twice.
    """

    rooms: dict[str, int]  # room id -> id of the event that added the user
    applied: int
    sids: set[str] = field(default_factory=set)

    def apply(self, entry: HistoryEntry) -> bool:
        """Apply a `joined`/`left` event of this user; False if it was already reflected."""
        if entry.id <= self.applied:
            return False
        self.applied = entry.id
        if entry.info.kind == JOINED:
            self.rooms[entry.info.room] = entry.id
        elif entry.info.kind == LEFT:
            self.rooms.pop(entry.info.room, None)
        return True

    def receives(self, entry: HistoryEntry) -> bool:
        """Does a room-scoped entry (a message, or an event to the room's members) reach them?

        The global room always; another room if the user is a member now and the entry
        is not older than the event that added them (on replay, a room joined later
        starts with its `roomJoined`, as it did live).
        """
        room = entry.info.room
        if is_global(room):
            return True
        joined_at = self.rooms.get(room)
        return joined_at is not None and entry.id >= joined_at


def changes_membership(entry: HistoryEntry) -> bool:
    return entry.info.kind in (JOINED, LEFT) and entry.info.subject is not None


def room_message(entry: HistoryEntry) -> dict[str, Any]:
    """The `message` event of a message entry: its wire object with its room."""
    return {**entry.wire, "room": entry.info.room}


def legacy_message(entry: HistoryEntry) -> dict[str, Any]:
    """The `getAllmessages` of a global-room message: the shape it had before rooms.

    A reply posted over the room routes carries `replyTo`; legacy clients never get it.
    """
    wire = entry.wire
    if "replyTo" not in wire:
        return wire
    return {key: value for key, value in wire.items() if key != "replyTo"}


def subject_event(entry: HistoryEntry) -> tuple[str, dict[str, Any]] | None:
    """The event a `joined`/`left` entry sends to the member it concerns (docs/ROOMS.md)."""
    payload, info = entry.wire, entry.info
    if info.kind == JOINED:
        return ROOM_JOINED_EVENT, {"_id": str(entry.id), "room": _room_object(payload, info.room)}
    if info.kind == LEFT:
        reason = payload.get("reason")
        return ROOM_LEFT_EVENT, {
            "_id": str(entry.id),
            "room": info.room,
            "reason": reason if isinstance(reason, str) else "left",
        }
    return None


def members_event(entry: HistoryEntry) -> tuple[str, dict[str, Any]] | None:
    """The event a room event sends to the room's members (docs/ROOMS.md, ROOM_STATE.md)."""
    payload, info = entry.wire, entry.info
    if info.kind in (JOINED, LEFT, ROLE):
        user = payload.get("user")
        role = payload.get("role") if info.kind != LEFT else None
        return MEMBER_CHANGED_EVENT, {
            "_id": str(entry.id),
            "room": info.room,
            "user": user if isinstance(user, dict) else {"id": info.subject},
            "role": role if isinstance(role, str) else None,
        }
    if info.kind == UPDATED:
        return ROOM_UPDATED_EVENT, {"_id": str(entry.id), "room": _room_object(payload, info.room)}
    change = MESSAGE_CHANGE_EVENTS.get(info.kind)
    if change is not None:
        return change, {**payload, "_id": str(entry.id), "room": info.room}
    return None


# Changes of a message and the event each one is to the room's members: the stored
# payload with the entry's id (docs/ROOM_STATE.md). Live and on replay, like messages.
MESSAGE_CHANGE_EVENTS: Final = {
    EDITED: MESSAGE_EDITED_EVENT,
    DELETED: MESSAGE_DELETED_EVENT,
    REACTION: REACTIONS_CHANGED_EVENT,
}


def _room_object(payload: dict[str, Any], room_id: str) -> dict[str, Any]:
    """The payload's `room` object, always with the entry's own room id."""
    room = payload.get("room")
    return {**room, "id": room_id} if isinstance(room, dict) else {"id": room_id}
