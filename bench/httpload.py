"""A lean HTTP/1.1 load generator: keep-alive connections on raw asyncio protocols.

A general HTTP client (aiohttp's costs about 130 µs of CPU per request) would eat the
same two cores the API under test needs and cap the numbers at the generator's speed.
Here each connection sends pre-built request bytes, reads the status line and
Content-Length, and sends the next request: a few µs per request. Only what the API
answers is supported: HTTP/1.1 keep-alive responses with a Content-Length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

RequestFactory = Callable[[], bytes]


def post_json_request(
    host: str, path: str, headers: dict[str, str], body: Callable[[], Any]
) -> RequestFactory:
    """Requests whose JSON body is made fresh each time by `body()` (e.g. a new id)."""
    head = request_head("POST", host, path, {**headers, "Content-Type": "application/json"})

    def make() -> bytes:
        payload = orjson.dumps(body())
        return head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload

    return make


def get_request(host: str, path: str, headers: dict[str, str]) -> RequestFactory:
    """The same GET every time."""
    request = request_head("GET", host, path, headers) + b"\r\n"
    return lambda: request


def request_head(method: str, host: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending requests one after another until `stop_at`."""

    def __init__(
        self,
        make_request: RequestFactory,
        stop_at: float,
        result: LoadResult,
        done: asyncio.Future[None],
    ) -> None:
        self._make_request = make_request
        self._stop_at = stop_at
        self._result = result
        self._done = done
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at = time.perf_counter()
        self._transport.write(self._make_request())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (response := self._take_response()) is not None:
            self._result.latencies.append(time.perf_counter() - self._sent_at)
            self._result.statuses[response] = self._result.statuses.get(response, 0) + 1
            if time.monotonic() < self._stop_at:
                self._send()
            else:
                self._finish()

    def _take_response(self) -> int | None:
        """The status of a complete response at the buffer's start (removed), else None."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._buffer[:end]).lower()
        marker = head.find(b"\r\ncontent-length:")
        if marker < 0:
            raise ValueError("response without Content-Length")
        value_end = head.find(b"\r\n", marker + 2)
        length = int(head[marker + 17 : value_end if value_end >= 0 else None])
        if len(self._buffer) < end + 4 + length:
            return None
        del self._buffer[: end + 4 + length]
        return int(head[9:12])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._result.errors += 1
            self._done.set_result(None)

    def _finish(self) -> None:
        assert self._transport is not None
        self._transport.close()
        if not self._done.done():
            self._done.set_result(None)


async def run_load(
    host: str, port: int, make_request: RequestFactory, concurrency: int, duration: float
) -> tuple[LoadResult, float]:
    """`concurrency` connections, each with one request in flight, for `duration` seconds."""
    loop = asyncio.get_running_loop()
    result = LoadResult()
    stop_at = time.monotonic() + duration
    done = [loop.create_future() for _ in range(concurrency)]
    started = time.monotonic()
    for future in done:
        await loop.create_connection(
            lambda f=future: _Connection(make_request, stop_at, result, f),
            host,
            port,  # type: ignore[misc]
        )
    # A connection that stops answering must not hang the run.
    await asyncio.wait_for(asyncio.gather(*done), duration + 30)
    return result, time.monotonic() - started
