"""Every private name of its libraries the gateway relies on, in one place per library.

The libraries are aiohttp, python-engineio and python-socketio.

The gateway keeps the protocol and the public API of its libraries and replaces a few
of their pieces for speed and memory (see transport.py, delivery.py, rooms.py). Where
a library has a public interface for that (python-engineio's event handlers and
`create_queue`, python-socketio's `serializer=`, `client_manager=` and manager methods,
aiohttp's `Request.transport` / `Request.writer`, redis-py's connection callback), the
gateway uses it. What is left is listed here, one `Touchpoint` per reach-in, in
`aiohttp.py`, `engineio.py` and `socketio.py`: why it is there, what it saves (with
the figure measured, see docs/INTERNALS.md for the command), and a `check` that raises
`TouchpointChanged` naming it when the library changes under it.

`tests/unit/test_library_touchpoints.py` runs each check as its own test, and
`make check-upstream` runs them against the newest releases of the libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class TouchpointChanged(AssertionError):
    """A library no longer has the private shape a touchpoint relies on."""

    def __init__(self, touchpoint: str, what: str) -> None:
        super().__init__(f"library touchpoint changed: {touchpoint}: {what}")
        self.touchpoint = touchpoint


@dataclass(frozen=True)
class Touchpoint:
    """One reach-in: the private name(s), where the gateway uses them, why, and what that saves."""

    name: str  # the private name(s), as `library: Class.attribute`
    used_in: str  # module.function of the gateway that relies on it
    why: str
    saves: str  # the measured gain (docs/INTERNALS.md says how it was measured)
    check: Callable[[], None]  # raises TouchpointChanged(name, ...) when the library changed


def every_touchpoint() -> list[Touchpoint]:
    """All touchpoints of the three libraries.

    They are imported here so that each module stays importable alone.
    """
    from services.realtime_service.seams import aiohttp, engineio, socketio

    return [*aiohttp.TOUCHPOINTS, *engineio.TOUCHPOINTS, *socketio.TOUCHPOINTS]
