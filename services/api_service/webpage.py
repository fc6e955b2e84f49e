"""Serving the chat page at `/` and its static files.

The page lives in `web/` at the repository root (WEB_ROOT to move it); the official
`socket.io-client` browser build comes from `web/node_modules`, installed from the npm
registry by the project's setup (`npm ci --prefix web`), never copied into the tree.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.api_service.errors import NotFound

DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
SOCKET_IO_BUILD = Path("node_modules/socket.io-client/dist/socket.io.min.js")


def web_routes(web_root: Path) -> list[web.RouteDef]:
    """`/` (the page), `/static/...` and the socket.io-client build."""

    async def index(_: web.Request) -> web.FileResponse:
        return _file(web_root / "index.html")

    async def socket_io_client(_: web.Request) -> web.FileResponse:
        return _file(web_root / SOCKET_IO_BUILD)

    async def static(request: web.Request) -> web.FileResponse:
        root = (web_root / "static").resolve()
        requested = request.match_info["path"]
        if "\x00" in requested:  # the OS cannot name such a file; Path raises on it
            raise NotFound("Not found")
        try:
            target = (root / requested).resolve()
        except (OSError, RuntimeError):  # a name too long, a symlink loop
            raise NotFound("Not found") from None
        if not target.is_relative_to(root):  # no escaping the folder with ../
            raise NotFound("Not found")
        return _file(target)

    return [
        web.get("/", index),
        web.get("/static/vendor/socket.io.min.js", socket_io_client),
        web.get("/static/{path:.+}", static),
    ]


def _file(path: Path) -> web.FileResponse:
    try:
        found = path.is_file()
    except (OSError, ValueError):  # e.g. a name longer than the file system allows
        found = False
    if not found:
        raise NotFound("Not found")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
