"""GET/POST /messages: stored shape, validation, identity, sanitising, idempotency, paging."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime

import pytest

from tests.helpers.limits import (
    HISTORY_DEFAULT_LIMIT,
    MAX_BODY_BYTES,
    MESSAGE_MAX_CHARS,
    RATE_LIMIT_MESSAGES_PER_MINUTE,
)
from tests.helpers.rest import Api, assert_error
from tests.helpers.sockets import SocketFactory, by_owner
from tests.helpers.stack import ChatStack

# ------------------------------------------------------------------------- GET validation


async def test_history_without_token_is_401(api: Api) -> None:
    assert_error(await api.request("GET", "/messages"), 401)


async def test_post_without_token_is_401(api: Api) -> None:
    reply = await api.request("POST", "/messages", json={"id": str(uuid.uuid4()), "text": "hi"})
    assert_error(reply, 401)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "abc"},
        {"limit": "-5"},
        {"before": "abc"},
        {"before": "1.5"},
        {"after": "abc"},
        {"after": "12abc"},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
async def test_history_bad_params_are_400(api: Api, new_user, params: dict[str, str]) -> None:
    user = await new_user()
    assert_error(await api.request("GET", "/messages", token=user.token, params=params), 400)


@pytest.mark.parametrize("limit", ["1", "500"])
async def test_history_limit_bounds_are_accepted(api: Api, new_user, limit: str) -> None:
    user = await new_user()
    await api.send(user, "so that the history is not empty")
    page = await api.history(user, limit=limit)
    assert 1 <= len(page) <= int(limit)


# ------------------------------------------------------------------------- POST


async def test_post_returns_201_with_the_stored_message(api: Api, new_user) -> None:
    user = await new_user()
    client_id = str(uuid.uuid4())
    reply = await api.post_message(user, "hello world", client_id)
    assert reply.status == 201, reply.text
    msg = reply.body
    assert isinstance(msg["_id"], str) and msg["_id"].isdigit()
    assert msg["id"] == client_id
    assert str(msg["owner"]) == user.id
    assert msg["userName"] == user.name
    assert msg["text"] == "hello world"
    created = datetime.fromisoformat(msg["createdAt"])
    assert created.tzinfo is not None
    # The stored message is what history returns.
    history = await api.history(user, limit=10)
    assert msg in history


async def test_sequential_posts_get_increasing_ids(api: Api, new_user) -> None:
    user = await new_user()
    ids = [int((await api.send(user, f"n{i}"))["_id"]) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"text": "no id"}, id="id-missing"),
        pytest.param({"id": "not-a-uuid", "text": "bad id"}, id="id-not-uuid"),
        pytest.param({"id": 12345, "text": "numeric id"}, id="id-number"),
        pytest.param({"id": "UUID"}, id="text-missing"),
        pytest.param({"id": "UUID", "text": ""}, id="text-empty"),
        pytest.param({"id": "UUID", "text": 42}, id="text-number"),
        pytest.param({"id": "UUID", "text": None}, id="text-null"),
        pytest.param({"id": "UUID", "text": "x" * (MESSAGE_MAX_CHARS + 1)}, id="text-too-long"),
    ],
)
async def test_post_invalid_message_is_400(api: Api, new_user, body: dict) -> None:
    user = await new_user()
    body = {k: (str(uuid.uuid4()) if v == "UUID" else v) for k, v in body.items()}
    assert_error(await api.request("POST", "/messages", token=user.token, json=body), 400)
    # Nothing was stored.
    assert [m for m in await api.history(user, limit=50) if str(m["owner"]) == user.id] == []


async def test_post_text_of_exactly_the_maximum_length_is_accepted(api: Api, new_user) -> None:
    user = await new_user()
    text = "y" * MESSAGE_MAX_CHARS
    assert (await api.send(user, text))["text"] == text


async def test_post_body_over_the_size_limit_is_413(api: Api, new_user) -> None:
    user = await new_user()
    body = {"id": str(uuid.uuid4()), "text": "z" * (MAX_BODY_BYTES + 1024)}
    assert_error(await api.request("POST", "/messages", token=user.token, json=body), 413)


# ------------------------------------------------------------------------- identity


async def test_forged_owner_and_user_name_are_replaced_by_the_token_identity(
    api: Api, new_user, sockets: SocketFactory
) -> None:
    author, victim = await new_user(), await new_user()
    watcher = await sockets.connect(victim.token)
    reply = await api.post_message(author, "who wrote this?", owner=victim.id, userName=victim.name)
    assert reply.status == 201, reply.text
    stored = reply.body
    assert (str(stored["owner"]), stored["userName"]) == (author.id, author.name)

    broadcast = await watcher.next_message(lambda m: m.get("_id") == stored["_id"])
    assert (str(broadcast["owner"]), broadcast["userName"]) == (author.id, author.name)

    history = {m["_id"]: m for m in await api.history(victim, limit=20)}
    assert str(history[stored["_id"]]["owner"]) == author.id
    assert history[stored["_id"]]["userName"] == author.name


# ------------------------------------------------------------------------- XSS


XSS = "<img src=x onerror=alert(1)><script>alert(2)</script><b>bold</b>"


def _assert_harmless(text: str) -> None:
    lowered = text.lower()
    assert "<script" not in lowered, text
    assert "alert(2)" not in lowered, text  # script content dropped, not just the tag
    assert "onerror" not in lowered, text
    assert "<b>bold</b>" in text, text  # harmless formatting survives
    assert "<img" not in lowered, text  # an image loads a resource when shown: dropped


async def test_stored_xss_is_sanitised_in_response_broadcast_and_history(
    api: Api, new_user, sockets: SocketFactory
) -> None:
    user = await new_user()
    watcher = await sockets.connect(user.token)
    stored = await api.send(user, XSS)
    _assert_harmless(stored["text"])
    broadcast = await watcher.next_message(lambda m: m.get("_id") == stored["_id"])
    assert broadcast["text"] == stored["text"]
    history = {m["_id"]: m for m in await api.history(user, limit=20)}
    assert history[stored["_id"]]["text"] == stored["text"]


# ------------------------------------------------------------------------- idempotency


async def test_retry_with_the_same_client_id_returns_the_same_message_once(
    api: Api, new_user, sockets: SocketFactory
) -> None:
    user = await new_user()
    watcher = await sockets.connect(user.token)
    client_id = str(uuid.uuid4())

    first = await api.post_message(user, "sent twice", client_id)
    assert first.status == 201, first.text
    second = await api.post_message(user, "sent twice", client_id)
    assert second.status == 200, second.text
    assert second.body == first.body

    sentinel = await api.send(user, "sentinel after the retry")
    mine = by_owner(user)
    # Delivered: the message once, then the sentinel, nothing in between.
    assert [m["_id"] for m in await watcher.collect(2, mine)] == [
        first.body["_id"],
        sentinel["_id"],
    ]
    history = [m for m in await api.history(user, limit=50) if m.get("id") == client_id]
    assert len(history) == 1


async def test_concurrent_retries_store_one_message(api: Api, new_user) -> None:
    user = await new_user()
    client_id = str(uuid.uuid4())
    replies = await asyncio.gather(*(api.post_message(user, "raced", client_id) for _ in range(5)))
    assert sorted(r.status for r in replies) == [200, 200, 200, 200, 201], [
        (r.status, r.text) for r in replies
    ]
    assert len({r.body["_id"] for r in replies}) == 1


async def test_same_client_id_from_another_user_is_a_separate_message(api: Api, new_user) -> None:
    alice, bob = await new_user(), await new_user()
    client_id = str(uuid.uuid4())
    a = await api.post_message(alice, "from alice", client_id)
    b = await api.post_message(bob, "from bob", client_id)
    assert (a.status, b.status) == (201, 201), (a.text, b.text)
    assert a.body["_id"] != b.body["_id"]
    assert (str(b.body["owner"]), b.body["text"]) == (bob.id, "from bob")


# ------------------------------------------------------------------------- paging


async def test_history_pages_oldest_first(api: Api, new_user) -> None:
    user = await new_user()
    sent = [await api.send(user, f"page message {i}") for i in range(12)]
    ids = [m["_id"] for m in sent]

    newest = await api.history(user, limit=5)
    assert [m["_id"] for m in newest] == ids[7:12]

    back = await api.history(user, limit=5, before=newest[0]["_id"])
    assert [m["_id"] for m in back] == ids[2:7]

    forward = await api.history(user, limit=5, after=ids[2])
    assert [m["_id"] for m in forward] == ids[3:8]

    rest = await api.history(user, after=ids[6])
    assert [m["_id"] for m in rest] == ids[7:12]

    assert await api.history(user, after=ids[11]) == []


async def test_history_default_limit(api: Api, new_user) -> None:
    user = await new_user()
    existing = len(await api.history(user, limit=HISTORY_DEFAULT_LIMIT + 1))
    missing = HISTORY_DEFAULT_LIMIT + 1 - existing
    for start in range(0, missing, 20):
        await asyncio.gather(
            *(api.send(user, f"filler {i}") for i in range(start, min(start + 20, missing)))
        )
    everything = await api.history(user, limit=HISTORY_DEFAULT_LIMIT + 1)
    assert len(everything) == HISTORY_DEFAULT_LIMIT + 1
    default = await api.history(user)
    assert default == everything[1:]


# ------------------------------------------------------------------------- rate limit


async def test_posting_faster_than_the_per_user_limit_gets_429_with_retry_after(
    api: Api, new_user, chat_stack: ChatStack
) -> None:
    if chat_stack.external and "CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE" not in os.environ:
        pytest.skip("set CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE to the external stack's limit")
    limit = RATE_LIMIT_MESSAGES_PER_MINUTE
    user, bystander = await new_user(), await new_user()
    # All within a few seconds, so the sliding window holds every one of them.
    for start in range(0, limit, 50):
        batch = await asyncio.gather(
            *(api.post_message(user, f"quota {i}") for i in range(start, min(start + 50, limit)))
        )
        assert [r.status for r in batch] == [201] * len(batch), [r.text for r in batch]

    refused = None
    for _ in range(limit // 5):  # the window's estimate may lag by a few at a minute edge
        reply = await api.post_message(user, "one too many", client_id := str(uuid.uuid4()))
        if reply.status != 201:
            refused = reply
            break
    assert refused is not None, "no 429 after the per-user limit"
    assert_error(refused, 429)
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert client_id not in {m.get("id") for m in await api.history(user, limit=20)}
    # The limit is per user: someone else may still post.
    assert (await api.post_message(bystander, "not me")).status == 201
