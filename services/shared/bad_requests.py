"""Malformed HTTP requests: counted, logged as one short line at most every few seconds.

aiohttp refuses a request it cannot parse (a header over 8190 bytes, too many headers,
a bad method or Content-Length, TLS on the plain port) with a 400 before any
middleware runs, and logs each one at ERROR with its traceback: about 1.3 KB of log per
two-line request, so anyone who can reach the port could fill the disk. The requests
are the client's fault, not ours; this filter on aiohttp's `aiohttp.server` logger
turns them into a counter and a rate-limited one-line warning, and lets every other
record through untouched.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import Counter

MALFORMED_REQUESTS = Counter(
    "chat_http_malformed_requests_total",
    "HTTP requests refused by the server's parser before reaching the app (except a bad "
    "method on a connection's first request, which aiohttp logs at debug only).",
)
LOG_INTERVAL_SECONDS = 10.0
SERVER_LOGGER = "aiohttp.server"


class MalformedRequestLog(logging.Filter):
    """Count parser refusals; let one through per `interval` as a one-line warning."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        super().__init__()
        self._interval = interval
        self._next_line_at = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        MALFORMED_REQUESTS.inc()
        now = time.monotonic()
        if now < self._next_line_at:
            self._suppressed += 1
            return False
        self._next_line_at = now + self._interval
        record.msg = "malformed HTTP request refused: %s (%d more since the last such line)"
        record.args = (type(error).__name__, self._suppressed)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        self._suppressed = 0
        return True


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(existing, MalformedRequestLog) for existing in logger.filters):
        logger.addFilter(MalformedRequestLog())
