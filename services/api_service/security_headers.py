"""Headers that tell a browser how little our responses may do.

The chat page loads only its own scripts and styles and talks only to its own origin
(REST with `fetch`, Socket.IO over WebSocket or long-polling: CSP Level 3 `'self'`
covers `ws:`/`wss:` to the same host). `/docs` runs Swagger UI from this origin: its
bundle and setup script (`script-src 'self'`), its stylesheet, the SVG icons that
stylesheet embeds as `data:` images, and `fetch` of `/openapi.json` and of the API's own
routes for "Try it out" (`connect-src 'self'`). Everything else (JSON, static files)
is never a document to render, so it gets the policy that allows nothing. No response
may be framed (clickjacking), sniffed into another type, or leak its URL as a referrer;
and `Server` no longer names the framework and its version.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NOTHING_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# aiohttp sets `Server: Python/3.x aiohttp/3.y` only when the header is absent.
SERVER_NAME = "chat"

_COMMON: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Server": SERVER_NAME,
}
_CSP_BY_PATH: Mapping[str, str] = {"/": PAGE_CSP, "/docs": DOCS_CSP}


def secure(response: web.StreamResponse, path: str) -> None:
    """Add the security headers to `response` (a handler's own values are kept)."""
    headers = response.headers
    for name, value in _COMMON.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", _CSP_BY_PATH.get(path, NOTHING_CSP))
