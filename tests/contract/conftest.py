"""Contract tests: the live API against its own OpenAPI document (schemathesis).

The stack is started for this directory alone (one API, two gateways, HAProxy, a
throw-away database), with the same helpers as the integration suite, but with the rate
limits raised: a fuzzer sends hundreds of sign-ups from one address, and a 429 after the
30th would hide every later answer. 429 is documented, so an external stack
(`CHAT_BASE_URL`, see tests/integration/conftest.py) with its real limits still conforms.

`CONTRACT_MAX_EXAMPLES` sets the fuzzing phase's examples per operation (default 30).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.helpers.contract import SUMMARY_NOTES, TALLY
from tests.helpers.rest import Api, User, unique_email, unique_name
from tests.helpers.stack import ChatStack, external_stack, local_chat_stack

# High enough that fuzzing never meets them, low enough that the limiter still runs.
RAISED_RATE_LIMIT = "1000000"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    write = terminalreporter.write_line
    terminalreporter.section("schemathesis contract summary")
    for note in SUMMARY_NOTES:
        write(note)
    width = max(len(label) for label in TALLY)
    for label, tally in sorted(TALLY.items()):
        statuses = ", ".join(
            f"{status}×{count}" for status, count in sorted(tally.statuses.items())
        )
        write(
            f"{label:<{width}}  {tally.cases:>5} cases  failures {len(tally.failures):>3}  "
            f"[{statuses}]"
        )
    cases = sum(t.cases for t in TALLY.values())
    failures = sum(len(t.failures) for t in TALLY.values())
    write(f"{len(TALLY)} operations, {cases} cases, {failures} failing cases")
    for label, tally in sorted(TALLY.items()):
        for failure in tally.failures[:3]:
            write(f"--- {label}: {failure[:2000]}")


@pytest.fixture(scope="session")
async def contract_stack() -> AsyncIterator[ChatStack]:
    """The system under test, started for the contract tests unless CHAT_BASE_URL is set."""
    if os.environ.get("CHAT_BASE_URL"):
        yield external_stack()
        return

    raised = {
        "RATE_LIMIT_MESSAGES_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_AUTH_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_HISTORY_ROWS_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_ROOMS_CREATED_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_INVITES_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_ROOM_POSTS_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_USER_SEARCH_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_ROOM_READS_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_MESSAGE_CHANGES_PER_MINUTE": RAISED_RATE_LIMIT,
        "RATE_LIMIT_READ_MARKERS_PER_MINUTE": RAISED_RATE_LIMIT,
    }
    async with local_chat_stack("contract", raised) as stack:
        yield stack


@pytest.fixture(scope="session")
async def contract_user(contract_stack: ChatStack) -> User:
    """A freshly signed-up and signed-in user whose token the fuzzer sends."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        api = Api(http, contract_stack.api_url)
        name, email, password = unique_name("Contract"), unique_email("contract"), uuid.uuid4().hex
        up = await api.signup(name, email, password)
        assert up.status == 201, (up.status, up.text)
        signin = await api.signin(email, password)
        assert signin.status == 200, (signin.status, signin.text)
    body = signin.body
    return User(
        id=body["userId"], name=body["name"], email=email, password=password, token=body["token"]
    )
