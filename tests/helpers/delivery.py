"""The delivery accounting: a steady writer that retries until acknowledged, and the report line.

Waits are on events with a timeout; the writer's pace and retry pace are the only sleeps
and say `# wait-ok`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from tests.helpers.limits import WAIT
from tests.helpers.processes import PrivatePostgres, PrivateRedis
from tests.helpers.rest import Api, User
from tests.helpers.sockets import ChatSocket
from tests.helpers.stack import Running


@dataclass
class Writer:
    """Posts at a steady rate; a failed POST is retried with the SAME id until acknowledged.

    `route(n)` may send the first attempt of the n-th message elsewhere (e.g. to an API
    process armed with a failpoint); retries always go to `api`.
    """

    api: Api
    user: User
    rate: float = 20.0
    route: Callable[[int], str | None] = lambda n: None
    path: str = "/messages"  # or a room's: /rooms/{room}/messages
    acknowledged: dict[str, int] = field(default_factory=dict)  # client uuid -> _id
    attempts: int = 0
    failures: int = 0
    retried_ok: int = 0  # acknowledged only after at least one failed attempt
    repeats: int = 0  # acknowledged with 200: the message had already been stored
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _acked: asyncio.Condition = field(default_factory=asyncio.Condition)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 60)

    async def wait_acks(self, count: int, timeout: float = WAIT) -> None:
        async def waiter() -> None:
            async with self._acked:
                await self._acked.wait_for(lambda: len(self.acknowledged) >= count)

        await asyncio.wait_for(waiter(), timeout)

    def ids(self) -> set[int]:
        return set(self.acknowledged.values())

    async def _run(self) -> None:
        n = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            n += 1
            await self._send(n, str(uuid.uuid4()))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)  # wait-ok: the writer's pace
                except TimeoutError:
                    pass
            else:
                next_at = time.monotonic()

    async def _send(self, n: int, client_id: str) -> None:
        base_url = self.route(n)
        failed = False
        while True:
            self.attempts += 1
            try:
                reply = await asyncio.wait_for(
                    self.api.request(
                        "POST",
                        self.path,
                        token=self.user.token,
                        json={"id": client_id, "text": f"steady {n}"},
                        base_url=base_url,
                    ),
                    10,
                )
                if reply.status in (200, 201):
                    self.acknowledged[client_id] = int(reply.body["_id"])
                    self.retried_ok += failed
                    self.repeats += reply.status == 200
                    async with self._acked:
                        self._acked.notify_all()
                    return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            failed = True
            self.failures += 1
            base_url = None  # retries go to the healthy API
            await asyncio.sleep(0.1)  # wait-ok: retry pace of a client whose POST failed


REACTION = "👍"


@dataclass
class Changer:
    """Edits, reacts to and deletes `writer`'s acknowledged room messages at a steady rate.

    Each change is retried (same request) until acknowledged: an edit with the same
    text, a reaction already there and a deletion already done change nothing and send
    no second event, so every acknowledged change must reach each client exactly once.
    `user` must be the messages' author (`writer.user`).
    """

    api: Api
    writer: Writer
    room: str
    rate: float = 4.0
    edits: dict[int, list[str]] = field(default_factory=dict)  # _id -> acknowledged texts
    reactions: set[int] = field(default_factory=set)
    deletions: set[int] = field(default_factory=set)
    failures: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 60)

    def changes(self) -> int:
        return sum(len(t) for t in self.edits.values()) + len(self.reactions) + len(self.deletions)

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            candidates = sorted(set(self.writer.ids()) - self.deletions)
            if len(candidates) >= 3:
                n += 1
                await self._change(n, candidates)
            try:
                await asyncio.wait_for(self._stop.wait(), 1 / self.rate)  # wait-ok: the pace
            except TimeoutError:
                pass

    async def _change(self, n: int, candidates: list[int]) -> None:
        """Edit the newest message; react to the one before; delete every third one edited."""
        path = f"/rooms/{self.room}/messages"
        newest, older = candidates[-1], candidates[-2]
        text = f"edited {n}"
        if await self._send("PATCH", f"{path}/{newest}", {"text": text}):
            self.edits.setdefault(newest, []).append(text)
        if older not in self.reactions and await self._send(
            "PUT", f"{path}/{older}/reactions/{REACTION}"
        ):
            self.reactions.add(older)
        if n % 3 == 0 and await self._send("DELETE", f"{path}/{candidates[-3]}"):
            self.deletions.add(candidates[-3])

    async def _send(self, method: str, path: str, body: object = None) -> bool:
        """Retry until acknowledged; False only when the scenario ends first."""
        while not self._stop.is_set():
            try:
                reply = await asyncio.wait_for(
                    self.api.request(method, path, token=self.writer.user.token, json=body), 10
                )
                if reply.status in (200, 204):
                    return True
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            self.failures += 1
            await asyncio.sleep(0.1)  # wait-ok: retry pace of a client whose request failed
        return False


def change_problems(changer: Changer, client: ChatSocket) -> list[str]:
    """What `client` lacks of the acknowledged changes, or got twice ([] when exact).

    A client told to refetch the room reads its state over REST instead: not checked here.
    """
    room = changer.room
    events = [(n, d) for n, d in client.events if isinstance(d, dict) and d.get("room") == room]
    seen = [str(d.get("_id")) for n, d in events if n != "message"]
    problems = (
        [f"{len(seen) - len(set(seen))} change events twice"] if len(set(seen)) < len(seen) else []
    )

    def about(name: str, message: int) -> list[dict]:
        return [d for n, d in events if n == name and _target(d) == message]

    for message, texts in changer.edits.items():
        got = [d["message"]["text"] for d in about("messageEdited", message)]
        problems += [f"edit {message} {t!r} lost" for t in texts if got.count(t) != 1]
    for message in changer.reactions:
        if not about("reactionsChanged", message):
            problems.append(f"reaction on {message} lost")
    for message in changer.deletions:
        if len(about("messageDeleted", message)) != 1:
            problems.append(f"deletion of {message} lost")
    return problems


def _target(data: dict) -> int | None:
    """The `_id` of the message a change event is about."""
    message = data.get("message")
    raw = message.get("_id") if isinstance(message, dict) else message
    try:
        return int(str(raw))
    except ValueError:
        return None


def report(
    scenario: str, writer: Writer, receivers: list[ChatSocket]
) -> tuple[str, dict[str, set[int]]]:
    acknowledged = writer.ids()
    lost = {r.name: r.lost(acknowledged) for r in receivers}
    line = (
        f"scenario={scenario} acknowledged={len(acknowledged)} "
        f"delivered={[len(r.delivered() & acknowledged) for r in receivers]} "
        f"duplicates={[r.duplicates() for r in receivers]} "
        f"lost={[len(lost[r.name]) for r in receivers]} "
        f"refetched={[len(r.rest_ids) for r in receivers]} "
        f"recovered_false={[sum(not e.recovered for e in r.recovered_events) for r in receivers]} "
        f"reconnects={[r.connects - 1 for r in receivers]} "
        f"post_failures={writer.failures} acked_as_repeat={writer.repeats}"
    )
    return line, lost


def room_report(
    scenario: str, room: str, label: str, writer: Writer, receivers: list[ChatSocket]
) -> tuple[str, dict[str, set[int]]]:
    """`report` for one room, counted from rooms-aware receivers' `message` events."""
    acknowledged = writer.ids()
    lost = {r.name: acknowledged - r.room_delivered(room) for r in receivers}
    line = (
        f"scenario={scenario} room={label} acknowledged={len(acknowledged)} "
        f"delivered={[len(r.room_delivered(room) & acknowledged) for r in receivers]} "
        f"duplicates={[r.room_duplicates(room) for r in receivers]} "
        f"lost={[len(lost[r.name]) for r in receivers]} "
        f"refetched={[len(r.rest_room_ids.get(room, ())) for r in receivers]} "
        f"post_failures={writer.failures} acked_as_repeat={writer.repeats}"
    )
    return line, lost


@dataclass
class FaultWorld:
    """The faults suite's private servers and the stack running on them."""

    redis: PrivateRedis
    postgres: PrivatePostgres
    stack: Running
