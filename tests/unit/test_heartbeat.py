"""The shared heartbeat pings each session `interval` after it is scheduled.

It also expires the silent ones.
"""

from __future__ import annotations

import asyncio

from services.realtime_service.heartbeat import Heartbeat

INTERVAL = 0.05
TIMEOUT = 0.05
WAIT = 5.0  # bounds a hang; a passing test never waits for it


class Session:
    """Records what the heartbeat asks of it; answers pings only when `answers`."""

    def __init__(self, heartbeat: Heartbeat, answers: bool) -> None:
        self.heartbeat = heartbeat
        self.answers = answers
        self.last_ping: float | None = None
        self.closing = False
        self.pings: list[float] = []
        self.expired = asyncio.get_running_loop().create_future()
        self.pinged = asyncio.Event()

    def send_ping(self) -> None:
        if self.closing:
            return
        loop = asyncio.get_running_loop()
        self.last_ping = loop.time()
        self.pings.append(loop.time())
        self.pinged.set()
        if self.answers:  # the PONG arrives in a later loop turn, as from a client
            loop.call_soon(self.pong)

    def pong(self) -> None:
        self.last_ping = None
        self.heartbeat.schedule(self)

    def ping_timed_out(self) -> None:
        self.expired.set_result(asyncio.get_running_loop().time())


async def test_a_session_is_pinged_every_interval_while_it_answers() -> None:
    heartbeat = Heartbeat(INTERVAL, TIMEOUT)
    session = Session(heartbeat, answers=True)
    started = asyncio.get_running_loop().time()
    heartbeat.schedule(session)
    for _ in range(3):
        await asyncio.wait_for(session.pinged.wait(), WAIT)
        session.pinged.clear()
    assert session.pings[0] - started >= INTERVAL * 0.9
    gaps = [b - a for a, b in zip(session.pings, session.pings[1:], strict=False)]
    assert all(gap >= INTERVAL * 0.9 for gap in gaps)
    assert not session.expired.done()
    heartbeat.stop()
    assert len(heartbeat) == 0


async def test_a_session_that_does_not_answer_expires_after_the_timeout() -> None:
    heartbeat = Heartbeat(INTERVAL, TIMEOUT)
    silent = Session(heartbeat, answers=False)
    live = Session(heartbeat, answers=True)
    heartbeat.schedule(silent)
    heartbeat.schedule(live)
    expired_at = await asyncio.wait_for(silent.expired, WAIT)
    assert expired_at - silent.pings[0] >= TIMEOUT * 0.9
    assert len(silent.pings) == 1  # no further ping to a silent session
    live.pinged.clear()
    await asyncio.wait_for(live.pinged.wait(), WAIT)  # the other session carries on
    assert not live.expired.done()
    heartbeat.stop()


async def test_a_closing_session_is_dropped_without_a_deadline() -> None:
    heartbeat = Heartbeat(INTERVAL, TIMEOUT)
    closing = Session(heartbeat, answers=False)
    closing.closing = True
    live = Session(heartbeat, answers=True)
    heartbeat.schedule(closing)
    heartbeat.schedule(live)
    await asyncio.wait_for(live.pinged.wait(), WAIT)
    assert closing.pings == []
    held = [entry[1] for entry in (*heartbeat._pings, *heartbeat._deadlines)]
    assert closing not in held and live in held
    heartbeat.stop()


async def test_an_earlier_ping_rearms_the_timer() -> None:
    """With a timeout longer than the interval, a new ping can be due before a deadline."""
    heartbeat = Heartbeat(INTERVAL, TIMEOUT * 20)
    silent = Session(heartbeat, answers=False)
    heartbeat.schedule(silent)
    await asyncio.wait_for(silent.pinged.wait(), WAIT)  # its deadline is far away now
    late = Session(heartbeat, answers=False)
    heartbeat.schedule(late)
    scheduled = asyncio.get_running_loop().time()
    await asyncio.wait_for(late.pinged.wait(), WAIT)
    assert late.pings[0] - scheduled < TIMEOUT * 10
    heartbeat.stop()


class Joiner:
    """A session under a connect deadline; `joined` says whether it connected in time."""

    def __init__(self, joined: bool) -> None:
        self.joined = joined
        self.last_ping: float | None = None
        self.timed_out = asyncio.get_running_loop().create_future()

    def send_ping(self) -> None:
        pass

    def ping_timed_out(self) -> None:
        pass

    def connect_timed_out(self) -> None:
        if not self.joined:
            self.timed_out.set_result(asyncio.get_running_loop().time())


async def test_connect_deadlines_share_the_heartbeat_timer() -> None:
    heartbeat = Heartbeat(60.0, 60.0, connect_timeout=INTERVAL)
    started = asyncio.get_running_loop().time()
    idle, joined = Joiner(joined=False), Joiner(joined=True)
    heartbeat.expect_connect(idle)
    heartbeat.expect_connect(joined)
    assert len(heartbeat) == 2
    timed_out_at = await asyncio.wait_for(idle.timed_out, WAIT)
    assert timed_out_at - started >= INTERVAL - 0.01
    assert not joined.timed_out.done()
    assert len(heartbeat) == 0
    heartbeat.stop()


class Counted:
    """A session that counts its pings and, through `all_pinged`, when a group is done."""

    def __init__(self, group: list[Counted], all_pinged: asyncio.Event) -> None:
        self.group = group
        self.all_pinged = all_pinged
        self.last_ping: float | None = None
        self.pings = 0
        group.append(self)

    def send_ping(self) -> None:
        self.pings += 1
        self.last_ping = asyncio.get_running_loop().time()
        if all(session.pings for session in self.group):
            self.all_pinged.set()

    def ping_timed_out(self) -> None:
        pass

    def connect_timed_out(self) -> None:
        pass


def due_in(heartbeat: Heartbeat, session: Counted, seconds: float) -> None:
    """Queue `session`'s ping `seconds` from now (the queue stays sorted by due time)."""
    heartbeat._pings.append((asyncio.get_running_loop().time() + seconds, session))


async def test_pings_due_within_the_batch_go_out_in_one_turn_and_later_ones_wait() -> None:
    heartbeat = Heartbeat(60.0, 60.0, batch=1.0)
    group: list[Counted] = []
    done = asyncio.Event()
    now_due, soon_due, later = Counted(group, done), Counted(group, done), Counted([], done)
    due_in(heartbeat, now_due, -0.01)
    due_in(heartbeat, soon_due, 0.5)  # within the batch: sent early, with the first
    due_in(heartbeat, later, 2.0)

    heartbeat._fire()

    assert (now_due.pings, soon_due.pings, later.pings) == (1, 1, 0)
    assert [entry[1] for entry in heartbeat._pings] == [later]
    heartbeat.stop()


async def test_a_large_group_of_due_pings_is_spread_over_turns() -> None:
    heartbeat = Heartbeat(60.0, 60.0, per_turn=2)
    group: list[Counted] = []
    all_pinged = asyncio.Event()
    sessions = [Counted(group, all_pinged) for _ in range(5)]
    for session in sessions:
        due_in(heartbeat, session, -0.01)

    heartbeat._fire()
    assert sum(session.pings for session in sessions) == 2  # the loop runs in between

    await asyncio.wait_for(all_pinged.wait(), WAIT)  # and the rest follow at once
    assert [session.pings for session in sessions] == [1] * 5
    heartbeat.stop()


def test_the_batch_never_exceeds_a_twentieth_of_the_interval() -> None:
    assert Heartbeat(25.0, 20.0).batch == 0.1
    assert Heartbeat(0.5, 0.5, batch=1.0).batch == 0.5 / 20
