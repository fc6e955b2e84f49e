"""Display names are plain text: refused at sign-up, cleaned where old ones go out."""

from __future__ import annotations

import pytest

from services.api_service import validation
from services.api_service.errors import Unprocessable
from services.shared.names import name_problem, plain_name


@pytest.mark.parametrize(
    "name",
    [
        "<img src=x onerror=alert(1)>",
        "Ann<script>",
        "a > b",
        "Ann\u202egnp",  # right-to-left override: displays as "Annpng"
        "Bob\u200bSmith",  # zero-width space: looks like someone else's name
        "Tab\there",
        "Line\u2028break",
        "bell\x07",
    ],
)
def test_markup_and_control_characters_are_refused_at_signup_naming_the_field(name: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        validation.parse_signup({"name": name, "email": "a@b.io", "password": "password1"})
    assert caught.value.status == 422
    assert set(caught.value.fields) == {"name"}


@pytest.mark.parametrize("name", ["Ann", "Zoë O'Brien & co", "李小龍", "Ann 👩‍💻", "a-b_c.d (e)"])
def test_plain_text_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None
    assert (
        validation.parse_signup({"name": name, "email": "a@b.io", "password": "password1"}).name
        == name
    )


def test_a_shape_error_still_answers_400_before_the_name_rule() -> None:
    with pytest.raises(Exception) as caught:
        validation.parse_signup({"name": "<b>", "email": "nope", "password": "password1"})
    assert getattr(caught.value, "status", None) == 400


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("<img src=x onerror=alert(1)>", "img src=x onerror=alert(1)"),
        ("Ann\u202egnp", "Anngnp"),
        ("<>", "Unnamed"),
        ("Ann", "Ann"),
        ("Ann 👩‍💻", "Ann 👩‍💻"),
    ],
)
def test_names_stored_before_the_rule_go_out_as_plain_text(stored: str, shown: str) -> None:
    assert plain_name(stored) == shown


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('<img src="https://tracker.example/p.gif?u=1">hi', "hi"),
        ("<b>bold</b> <i>it</i> <code>x</code>", "<b>bold</b> <i>it</i> <code>x</code>"),
        (
            '<a href="https://example.org">x</a>',
            '<a href="https://example.org" rel="noopener noreferrer nofollow">x</a>',
        ),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer nofollow">x</a>'),
        ('<p style="background:url(//tracker)">p</p>', "<p>p</p>"),
        (
            "<iframe src=//x></iframe><video poster=//x></video><svg><image href=//x /></svg>ok",
            "ok",
        ),
        (
            "<ul><li>one</li></ul><blockquote>q</blockquote>",
            "<ul><li>one</li></ul><blockquote>q</blockquote>",
        ),
    ],
)
def test_message_text_keeps_formatting_and_loads_nothing(text: str, kept: str) -> None:
    assert validation.sanitize_text(text) == kept
