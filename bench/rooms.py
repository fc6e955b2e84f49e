"""Who is in which room, and which room each message goes to, in a rooms load.

`python -m bench --rooms R --clients C` puts the C clients in R rooms of about C / R
members and publishes messages round-robin over the rooms. Both sides of the bench
compute the same layout from (R, C) alone, so nothing per client has to travel
between the orchestrator, the generators and the Node publisher:

* client i (0-based, the order tokens are minted in) is in room `i * R // C`: rooms
  are blocks of consecutive clients. Clients are spread over the replicas round-robin
  (client i -> replica i mod N), so every room has members on every replica and each
  message crosses Redis to all of them, as a room of people on different servers does;
* message seq s (1-based, the `_id`) goes to room `(s - 1) mod R`: a window of
  R x k messages sends k to every room;
* room r is named by the UUID whose integer value is `ROOM_ID_BASE + r` (what
  bench/node/publish.js computes too; it gets the base in `BENCH_ROOM_ID_BASE`).

R = 0 is the global room: every client receives every message, nothing is checked
per room.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

# 0x0b0b00000000: room ids read "00000000-0000-0000-0000-0b0b000003e7", easy to tell from
# the user ids (UUID(int=i + 1)); small enough for a JavaScript number.
ROOM_ID_BASE = 0x0B0B_0000_0000


def room_id(room: int) -> str:
    """The id (a UUID string) of room number `room`."""
    return str(uuid.UUID(int=ROOM_ID_BASE + room))


@dataclass(frozen=True)
class RoomLayout:
    """The rooms of one run: `rooms` rooms over `clients` clients (rooms=0: global room)."""

    rooms: int
    clients: int

    @property
    def global_room(self) -> bool:
        return self.rooms == 0

    @property
    def slots(self) -> int:
        """How many distinct rooms messages are spread over (1 for the global room)."""
        return max(1, self.rooms)

    def room_of_client(self, index: int) -> int:
        return 0 if self.global_room else index * self.rooms // self.clients

    def room_of_seq(self, seq: int) -> int:
        return 0 if self.global_room else (seq - 1) % self.rooms

    def members(self, room: int) -> range:
        """The client indexes in `room`."""
        if self.global_room:
            return range(self.clients)
        first = -(-room * self.clients // self.rooms)
        last = -(-(room + 1) * self.clients // self.rooms)
        return range(first, last)

    def expected_in_window(self, room: int, base: int, count: int) -> int:
        """How many of the seqs base .. base+count-1 go to `room`."""
        if self.global_room:
            return count
        first_offset = (room - (base - 1)) % self.rooms
        return len(range(first_offset, count, self.rooms))

    def per_room_slots(self, count: int) -> int:
        """Receipt counters each client needs for a window of `count` messages."""
        return -(-count // self.slots)

    def slot_of(self, base: int, seq: int) -> int:
        """Where a room's message lands among its room's messages of the window.

        The messages of one room are `rooms` seqs apart, so (seq - base) // rooms numbers
        them 0, 1, 2, ... within the window.
        """
        return (seq - base) // self.slots
