"""Owning background tasks: every one started is cancelled and awaited at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)

# How often a task that survived a cancellation is cancelled again, and for how long.
_RECANCEL_SECONDS = 0.1
_GIVE_UP_SECONDS = 5.0


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has unwound, so nothing outlives its owner.

    Some library loops catch a cancellation that lands in the middle of a reconnect
    and carry on (python-socketio's pub/sub listener, inside redis-py), so the task is
    cancelled again until it ends. Left running, such a task made a gateway that had
    failed to bind its port hang at exit: aiohttp cancels leftover tasks only once and
    then waits for them forever.
    """
    if task is None:
        return
    deadline = asyncio.get_running_loop().time() + _GIVE_UP_SECONDS
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_RECANCEL_SECONDS)
        if not task.done() and asyncio.get_running_loop().time() > deadline:
            log.warning("task ignores cancellation; leaving it", extra={"task": task.get_name()})
            return
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
