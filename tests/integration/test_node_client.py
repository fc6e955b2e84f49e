"""The official socket.io-client 4.x, configured exactly like the existing React client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stack import REPO_ROOT
from tests.helpers.rest import Api
from tests.helpers.stack import ChatStack

JS_DIR = REPO_ROOT / "tests" / "js"
SCRIPT = JS_DIR / "client_check.mjs"
MESSAGES = 5
NODE_TIMEOUT_MS = 30_000


async def _run(*argv: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.fixture(scope="module")
async def node() -> str:
    """The node binary with tests/js/node_modules installed from the lock file."""
    binary = shutil.which("node")
    npm = shutil.which("npm")
    if binary is None or npm is None:
        pytest.skip("node/npm are not installed (apt-get install nodejs npm)")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        code, out = await _run(npm, "ci", "--no-audit", "--no-fund", cwd=JS_DIR)
        assert code == 0, f"npm ci failed:\n{out}"
    return binary


class NodeClient:
    """The running client_check.mjs: its JSON lines arrive on a queue."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict] = []

    async def next_event(self, timeout: float = 30) -> dict:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert raw, f"node client exited early; output so far: {self.lines}"
        event = json.loads(raw)
        self.lines.append(event)
        return event

    async def wait_for(self, name: str, timeout: float = 30) -> dict:
        async def scan() -> dict:
            while True:
                event = await self.next_event(timeout)
                if event["event"] == name:
                    return event
                assert event["event"] not in {"connect_error", "timeout"}, self.lines

        return await asyncio.wait_for(scan(), timeout)


@pytest.fixture
async def start_node(node: str) -> AsyncIterator:
    procs: list[asyncio.subprocess.Process] = []

    async def start(url: str, token: str, count: int, owner: str) -> NodeClient:
        proc = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPT),
            url,
            token,
            str(count),
            str(NODE_TIMEOUT_MS),
            owner,
            cwd=JS_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        procs.append(proc)
        return NodeClient(proc)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


async def test_official_client_with_the_react_options(
    api: Api, chat_stack: ChatStack, new_user, start_node
) -> None:
    user = await new_user()
    client = await start_node(chat_stack.lb_url, user.token, MESSAGES, user.id)

    connect = await client.wait_for("ready")  # connected AND upgraded to websocket
    assert connect["id"], client.lines
    # The React client starts with long-polling (where its token header goes) and upgrades.
    assert [e["transport"] for e in client.lines if e["event"] == "open"] == ["polling"]
    assert {"event": "upgrade", "transport": "websocket"} in client.lines, client.lines

    sent = [await api.send(user, f"to the node client {i}") for i in range(MESSAGES)]

    received = [(await client.wait_for("message"))["data"] for _ in range(MESSAGES)]
    code = await asyncio.wait_for(client.proc.wait(), 30)
    stderr = (await client.proc.stderr.read()).decode() if client.proc.stderr else ""
    assert code == 0, (client.lines, stderr)
    counts = Counter(m["_id"] for m in received)
    assert counts == Counter(m["_id"] for m in sent), (counts, [m["_id"] for m in sent])
    assert [m["_id"] for m in received] == [m["_id"] for m in sent]
    assert received == sent  # the same fields the React client renders


async def test_official_client_with_a_bad_token_gets_connect_error(
    chat_stack: ChatStack, start_node
) -> None:
    client = await start_node(chat_stack.lb_url, "not.a.jwt", 1, "nobody")
    error = await client.wait_for("connect_error")
    assert "unauthorized" in error["message"].lower() or "token" in error["message"].lower()
