"""What both services know about rooms: the global room, event kinds and event names.

Every message belongs to a room (docs/ROOMS.md). Membership changes, room updates and
changes of messages (edits, deletions, reactions: docs/ROOM_STATE.md) are *room
events*: rows that take the next id of the messages' sequence, so the relay publishes
messages and events as one ordered stream and every gateway applies a membership
change, and delivers a change of a message, at exactly its place among the messages.
"""

from __future__ import annotations

from typing import Final, Literal

# The feed that existed before rooms: every account is a member, without a row.
GLOBAL_ROOM_ID: Final = "00000000-0000-0000-0000-000000000000"
GLOBAL_ROOM_NAME: Final = "General"

# The kind of a stream entry: a message, or one of the room events of room_events.kind.
EntryKind = Literal["message", "joined", "left", "role", "updated", "edited", "deleted", "reaction"]
MESSAGE: Final = "message"
JOINED: Final = "joined"  # subject became a member (created, joined, added, direct room)
LEFT: Final = "left"  # subject left or was removed
ROLE: Final = "role"  # subject's role changed (ownership transfer, admin or back)
UPDATED: Final = "updated"  # the room's name, topic or archived state changed
# Changes of a message, to the room's members (docs/ROOM_STATE.md); no subject.
EDITED: Final = "edited"  # its author changed its text
DELETED: Final = "deleted"  # its author or a room admin deleted it: a tombstone remains
REACTION: Final = "reaction"  # a member added or removed a reaction: the new aggregate
ROOM_EVENT_KINDS: Final = (JOINED, LEFT, ROLE, UPDATED, EDITED, DELETED, REACTION)

# Socket.IO events a rooms-aware client receives (docs/ROOMS.md, "Socket.IO").
MESSAGE_EVENT: Final = "message"
ROOM_JOINED_EVENT: Final = "roomJoined"
ROOM_LEFT_EVENT: Final = "roomLeft"
ROOM_UPDATED_EVENT: Final = "roomUpdated"
MEMBER_CHANGED_EVENT: Final = "memberChanged"
MESSAGE_EDITED_EVENT: Final = "messageEdited"
MESSAGE_DELETED_EVENT: Final = "messageDeleted"
REACTIONS_CHANGED_EVENT: Final = "reactionsChanged"


def is_global(room_id: str) -> bool:
    return room_id == GLOBAL_ROOM_ID
