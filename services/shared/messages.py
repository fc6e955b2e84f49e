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
class ReplyPreview:
    """What a reply shows of the message it answers (docs/ROOM_STATE.md, "Replies").

    `excerpt` is plain text taken when the reply was posted: a later edit of the quoted
    message leaves it as it was; a deletion empties it.
    """

    id: int
    owner: str
    user_name: str
    excerpt: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "_id": str(self.id),
            "owner": self.owner,
            "userName": self.user_name,
            "excerpt": self.excerpt,
        }


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
    reply_to: ReplyPreview | None = None
    edited_at: datetime | None = None
    deleted: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of the legacy routes and `getAllmessages` (no room: the global one).

        A reply (posted over the room routes) also carries `replyTo`; the gateway leaves
        it out of `getAllmessages`, so legacy clients see the shape they always did.
        """
        wire: dict[str, Any] = {
            "_id": str(self.id),
            "id": self.client_id,
            "owner": self.owner,
            "userName": self.user_name,
            "text": self.text,
            "createdAt": self.created_at.isoformat(),
        }
        if self.reply_to is not None:
            wire["replyTo"] = self.reply_to.to_wire()
        return wire

    def to_room_wire(self) -> dict[str, Any]:
        """The JSON object of the room routes and the `message` event: the wire with its room.

        With `edited` once edited; a deleted message is a tombstone (docs/ROOM_STATE.md).
        """
        if self.deleted:
            return {
                "_id": str(self.id),
                "id": self.client_id,
                "room": self.room,
                "owner": self.owner,
                "userName": self.user_name,
                "createdAt": self.created_at.isoformat(),
                "deleted": True,
                "text": "",
            }
        wire = {**self.to_wire(), "room": self.room}
        if self.edited_at is not None:
            wire["edited"] = self.edited_at.isoformat()
        return wire
