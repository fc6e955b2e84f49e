"""Engine.IO pings for every session of a gateway, on one timer.

python-engineio gives each session a task that sleeps `ping_interval`, then pings; with
thousands of idle clients those tasks (a coroutine, a future and a timer each) were a
large part of the memory per connection. Every session waits the same interval, so
the pending pings form a queue already sorted by due time: one deque and one timer
serve them all. The same holds for ping deadlines (`ping_timeout` after each ping),
which are checked here too: a client that has not answered by then is gone. And the
same again for connect deadlines (`connect_timeout` after a session opens): a session
that has not connected to a namespace by then is closed, so sessions that never
authenticate cannot pile up, and no task or timer per session is needed for that.

Pings due within `PING_BATCH_SECONDS` of each other go out together, the later ones a
little early. Each session pinged at its own instant cost a timer wakeup of its own and,
a moment later, a wakeup to read its PONG: with thousands of idle clients, two loop
turns per ping were most of an idle replica's CPU. Batched, one wakeup sends a group and
their PONGs come back together. An Engine.IO client accepts an early ping (it only
waits `pingInterval + pingTimeout` for the next one). A turn sends at most
`PINGS_PER_TURN`; the rest go on the next turn, so that a large group never holds the
loop for long.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

_SLACK = 0.001  # seconds
# Pings due this close together go out in one loop turn (module docstring), capped at a
# twentieth of the interval so that no ping goes out much earlier than it is due.
PING_BATCH_SECONDS = 0.1
PINGS_PER_TURN = 100


class PingedSession(Protocol):
    """What the heartbeat needs from an Engine.IO session."""

    # When the unanswered ping went out (python-engineio's field); None once answered.
    last_ping: float | None

    def send_ping(self) -> None:
        """Send a PING now and stamp `last_ping`, unless the session is closing."""

    def ping_timed_out(self) -> None:
        """The ping stamped `last_ping` got no answer within the timeout."""

    def connect_timed_out(self) -> None:
        """`connect_timeout` has passed since the session opened (it may have connected since)."""


class Heartbeat:
    """Schedules each session's next ping and checks each ping's deadline."""

    def __init__(
        self,
        interval: float,
        timeout: float,
        connect_timeout: float = 0.0,
        batch: float = PING_BATCH_SECONDS,
        per_turn: int = PINGS_PER_TURN,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.batch = max(_SLACK, min(batch, interval / 20))
        self.per_turn = per_turn
        self._pings: deque[tuple[float, PingedSession]] = deque()
        self._deadlines: deque[tuple[float, PingedSession, float]] = deque()
        self._connects: deque[tuple[float, PingedSession]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def __len__(self) -> int:
        return len(self._pings) + len(self._deadlines) + len(self._connects)

    def schedule(self, session: PingedSession) -> None:
        """Ping `session` once `interval` has passed (after its connect or its last PONG)."""
        due = asyncio.get_running_loop().time() + self.interval
        self._pings.append((due, session))
        self._arm(due)

    def expect_connect(self, session: PingedSession) -> None:
        """Check `session` once `connect_timeout` has passed (from now, its opening)."""
        due = asyncio.get_running_loop().time() + self.connect_timeout
        self._connects.append((due, session))
        self._arm(due)

    def stop(self) -> None:
        """Forget every pending ping and deadline (the server is shutting down)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pings.clear()
        self._deadlines.clear()
        self._connects.clear()

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            if self._timer_at <= due:
                return
            self._timer.cancel()
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        # The loop may run a timer marginally early; what is due within the slack runs now.
        limit = now + _SLACK
        pings, deadlines, connects = self._pings, self._deadlines, self._connects
        while connects and connects[0][0] <= limit:
            connects.popleft()[1].connect_timed_out()
        while deadlines and deadlines[0][0] <= limit:
            _, session, stamp = deadlines.popleft()
            if session.last_ping == stamp:  # no PONG since that ping
                session.ping_timed_out()
        ping_limit = now + self.batch
        sent = 0
        while pings and pings[0][0] <= ping_limit and sent < self.per_turn:
            session = pings.popleft()[1]
            session.send_ping()
            sent += 1
            sent_at = session.last_ping
            if sent_at is not None:
                deadlines.append((now + self.timeout, session, sent_at))
        if sent == self.per_turn and pings and pings[0][0] <= ping_limit:
            self._arm(now)  # the rest of this group on the next turn
            return
        heads = [queue[0][0] for queue in (pings, deadlines, connects) if queue]
        if heads:
            self._arm(min(heads))
