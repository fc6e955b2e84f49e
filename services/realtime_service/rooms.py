"""python-socketio's room bookkeeping, with each client's own room implied instead of stored.

python-socketio puts every client in a room named after its sid, stored like any room:
a bidict of one entry, about 600 bytes per connection. The namespace's member list
(the room `None`, sid -> Engine.IO sid) already holds the same pair, so this mixin
answers the sid room from it; every other room is stored as before, and the manager's
methods (`get_participants`, `get_rooms`, `enter_room`, ...) keep their results. One
difference: a client cannot leave its own room, which lasts as long as its connection
(leaving it in python-socketio makes the client unreachable by its sid; nothing here
does that).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class ImpliedSidRooms:
    """Mixin for a python-socketio manager (put it before the manager class)."""

    rooms: dict[str, dict[Any, Any]]  # namespace -> room -> bidict(sid -> eio_sid)

    def _member(self, namespace: str, sid: Any) -> Any:
        """The Engine.IO sid of `sid` if it is connected to `namespace`, else None."""
        members = self.rooms.get(namespace, {}).get(None)
        return members.get(sid) if members is not None and isinstance(sid, str) else None

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> Any:
        if room is not None and room == sid and self._member(namespace, sid) is not None:
            return None  # a client's own room: implied by its membership of the namespace
        return super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]

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
