"""The chat message as both services and every client see it.

The wire shape is fixed by the existing React client: it renders `_id`, `owner`,
`userName` and `text`. `_id` is a string of an integer that increases in the order
messages become visible, so clients can sort, de-duplicate and page by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.shared.rooms import GLOBAL_ROOM_ID

# Socket.IO event names, fixed by the existing client.
NEW_MESSAGE_EVENT = "getAllmessages"
CLIENT_SEND_EVENT = "sendAllMessages"


@dataclass(frozen=True)
class StoredMessage:
    """A message as committed to the database."""

    id: int
    client_id: str
    owner: str
    user_name: str
    text: str
    created_at: datetime
    room: str = GLOBAL_ROOM_ID

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of the legacy routes and `getAllmessages` (no room: the global one)."""
        return {
            "_id": str(self.id),
            "id": self.client_id,
            "owner": self.owner,
            "userName": self.user_name,
            "text": self.text,
            "createdAt": self.created_at.isoformat(),
        }

    def to_room_wire(self) -> dict[str, Any]:
        """The JSON object of the room routes and the `message` event: the wire with its room."""
        return {**self.to_wire(), "room": self.room}
