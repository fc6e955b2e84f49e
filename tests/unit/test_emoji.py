"""A reaction is exactly one emoji (docs/ROOM_STATE.md, "Reactions")."""

from __future__ import annotations

import pytest

from services.api_service.emoji import MAX_EMOJI_BYTES, is_one_emoji


@pytest.mark.parametrize(
    "emoji",
    [
        "👍",  # one pictograph
        "❤",  # text presentation by default
        "❤️",  # with the emoji presentation selector
        "👍🏽",  # with a skin tone
        "🇫🇷",  # a flag: two regional indicators
        "1️⃣",  # a keycap
        "#⃣",  # a keycap without the selector
        "🧑‍💻",  # two pictographs joined into one
        "🏳️‍🌈",  # a joined sequence with a selector inside
        "©️",
    ],
)
def test_one_emoji_is_accepted(emoji: str) -> None:
    assert is_one_emoji(emoji)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a",
        "1",
        "ab",
        "<b>",
        "👍👍",  # two
        "👍 ",  # with text around it
        "ok👍",
        "🇫",  # half a flag
        "🇫🇷🇩🇪",  # two flags
        "🏽",  # a skin tone alone
        "\u200d",  # a joiner alone
        "👍\u200d",  # a joiner with nothing to join
        "\u200d👍",
        "1\u20e3\u20e3",
        "👨‍👩‍👧‍👦",  # one emoji, but longer than the bound
    ],
)
def test_anything_else_is_refused(value: str) -> None:
    assert not is_one_emoji(value)


def test_the_bound_is_in_utf8_bytes() -> None:
    assert len("👨‍👩‍👧‍👦".encode()) > MAX_EMOJI_BYTES >= len("🧑‍💻".encode())
