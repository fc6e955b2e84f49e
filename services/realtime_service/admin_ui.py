"""The Socket.IO Admin UI's sign-in: strong credentials only, and a throttle on guessing.

python-socketio's `instrument()` checks the UI's credentials on each connect to its
`/admin` namespace and answers `authentication failed`, as often as asked. Here the
credentials are compared in constant time (through its public `auth` callable), and
the namespace's connect handler is wrapped so that a client address with too many
recent failures is refused before any comparison. The address is the one the trusted
load balancer vouches for (services/shared/addresses.py), from the aiohttp request
python-engineio keeps in the environ. Failures are counted per replica, in memory:
with N replicas an attacker gets N times the budget, still a handful of guesses a
window against a password of 16+ characters.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import socketio

from services.realtime_service.metrics import ADMIN_LOGIN_FAILURES
from services.shared.addresses import IpNetwork, client_address, forwarded_for_values

log = logging.getLogger(__name__)

ADMIN_NAMESPACE = "/admin"
MIN_PASSWORD_LENGTH = 16
MIN_DISTINCT_CHARACTERS = 8
# Addresses remembered at most; beyond it, the oldest failures are forgotten first.
MAX_TRACKED_ADDRESSES = 10_000


def weak_password_reason(password: str) -> str | None:
    """Why `password` is too weak for the Admin UI in production, or None.

    At least 16 characters, at least 8 different ones, and not one shorter string
    repeated ("abcdabcdabcdabcd").
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"shorter than {MIN_PASSWORD_LENGTH} characters"
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return f"fewer than {MIN_DISTINCT_CHARACTERS} different characters"
    if password in (password + password)[1:-1]:  # a rotation of itself: a repeated unit
        return "a shorter string repeated"
    return None


def credentials_check(username: str, password: str) -> Callable[[Any], bool]:
    """The `auth` callable for `instrument()`: the UI's {username, password}, in constant time."""
    expected_user, expected_password = username.encode(), password.encode()

    def check(client_auth: Any) -> bool:
        if not isinstance(client_auth, Mapping):
            return False
        user, secret = client_auth.get("username"), client_auth.get("password")
        if not isinstance(user, str) or not isinstance(secret, str):
            return False
        user_ok = hmac.compare_digest(user.encode(), expected_user)
        return hmac.compare_digest(secret.encode(), expected_password) and user_ok

    return check


class LoginThrottle:
    """Failed sign-ins per client address in a sliding window; too many lock the address out."""

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._failures: dict[str, list[float]] = {}

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(address, ()) if now - t < self._window]
        if times:
            self._failures[address] = times
        else:
            self._failures.pop(address, None)
        return times

    def locked(self, address: str, now: float | None = None) -> bool:
        return len(self._recent(address, time.monotonic() if now is None else now)) >= self._max

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._recent(address, now)
        self._failures.pop(address, None)  # re-insert: the dict stays ordered by last failure
        while len(self._failures) >= MAX_TRACKED_ADDRESSES:
            del self._failures[next(iter(self._failures))]
        self._failures[address] = [*times, now]


def environ_address(environ: Mapping[str, Any], trusted: Sequence[IpNetwork]) -> str:
    """The client address of a Socket.IO connect, from the aiohttp request in its environ."""
    request = environ.get("aiohttp.request")
    if request is None:
        return "unknown"
    return client_address(request.remote, forwarded_for_values(request.headers), trusted)


ConnectHandler = Callable[[str, dict[str, Any], Any], Awaitable[Any]]


def throttled_connect(
    connect: ConnectHandler, throttle: LoginThrottle, trusted: Sequence[IpNetwork]
) -> ConnectHandler:
    """`connect` (the Admin UI's), refusing locked-out addresses and counting failures."""

    async def handler(sid: str, environ: dict[str, Any], auth: Any = None) -> Any:
        address = environ_address(environ, trusted)
        if throttle.locked(address):
            ADMIN_LOGIN_FAILURES.labels("throttled").inc()
            raise socketio.exceptions.ConnectionRefusedError(
                "too many failed sign-ins, try again later"
            )
        try:
            return await connect(sid, environ, auth)
        except socketio.exceptions.ConnectionRefusedError:
            throttle.failed(address)
            ADMIN_LOGIN_FAILURES.labels("refused").inc()
            log.warning("admin UI sign-in failed", extra={"client": address})
            raise

    return handler


def instrument(
    sio: socketio.AsyncServer,
    username: str,
    password: str,
    server_id: str,
    throttle: LoginThrottle,
    trusted: Sequence[IpNetwork],
) -> None:
    """Enable the Admin UI on `sio` behind `credentials_check` and `throttle`."""
    admin = sio.instrument(
        auth=credentials_check(username, password), mode="production", server_id=server_id
    )
    sio.on(
        "connect",
        throttled_connect(admin.admin_connect, throttle, trusted),
        namespace=ADMIN_NAMESPACE,
    )
