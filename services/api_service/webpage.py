"""Serving the chat page at `/`, the API reference at `/docs`, and their static files.

The pages live in `web/` at the repository root (WEB_ROOT to move it). What they take
from the npm registry (pinned in web/package.json) comes from `web/node_modules`,
installed by the project's setup (`npm ci --prefix web`), never copied into the tree:
the official `socket.io-client` browser build, and Swagger UI's prebuilt bundle and
stylesheet (`swagger-ui-dist`), which `/docs` loads to render `/openapi.json`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from services.api_service.errors import NotFound

DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
# /static/vendor/<name>: the npm packages' files the pages load, all from this origin.
VENDOR_FILES = {
    "socket.io.min.js": Path("node_modules/socket.io-client/dist/socket.io.min.js"),
    "swagger-ui-bundle.js": Path("node_modules/swagger-ui-dist/swagger-ui-bundle.js"),
    "swagger-ui.css": Path("node_modules/swagger-ui-dist/swagger-ui.css"),
}


def web_routes(web_root: Path) -> list[web.RouteDef]:
    """`/` (the page), `/static/...` and the npm packages' files (`/docs`: endpoints.py)."""

    async def index(_: web.Request) -> web.FileResponse:
        return _file(web_root / "index.html")

    def vendor(relative: Path) -> Handler:
        async def serve(_: web.Request) -> web.FileResponse:
            return _file(web_root / relative)

        return serve

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
        *(web.get(f"/static/vendor/{name}", vendor(path)) for name, path in VENDOR_FILES.items()),
        web.get("/static/{path:.+}", static),
    ]


def docs_page(web_root: Path) -> Handler:
    """`/docs`: Swagger UI's page (web/docs.html; the renderer's setup is static/docs.js)."""

    async def docs(_: web.Request) -> web.FileResponse:
        return _file(web_root / "docs.html")

    return docs


def _file(path: Path) -> web.FileResponse:
    try:
        found = path.is_file()
    except (OSError, ValueError):  # e.g. a name longer than the file system allows
        found = False
    if not found:
        raise NotFound("Not found")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
