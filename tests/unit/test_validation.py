"""Input validation: what is accepted, what is refused and how it is reported."""

from __future__ import annotations

import pytest

from services.api_service import validation
from services.api_service.errors import ValidationFailed


def test_signup_trims_and_accepts_a_valid_form() -> None:
    form = validation.parse_signup(
        {"name": "  Ann ", "email": " ann@example.org ", "password": "s3cret-pass"}
    )
    assert (form.name, form.email) == ("Ann", "ann@example.org")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A", "email": "a@b.io", "password": "password1"}, "name"),
        ({"name": "x" * 31, "email": "a@b.io", "password": "password1"}, "name"),
        ({"name": "Ann", "email": "not-an-email", "password": "password1"}, "email"),
        ({"name": "Ann", "email": "a@b.io", "password": "short"}, "password"),
        ({"name": "Ann", "email": "a@b.io"}, "password"),
        ({"name": 42, "email": "a@b.io", "password": "password1"}, "name"),
    ],
)
def test_signup_names_the_bad_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validation.parse_signup(body)
    assert field in caught.value.fields
    assert caught.value.body()["message"].startswith("invalid input")


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_bodies_that_are_not_objects_are_refused(body: object) -> None:
    with pytest.raises(ValidationFailed, match="JSON object"):
        validation.parse_signin(body)


def test_message_text_is_sanitized_and_owner_fields_are_ignored() -> None:
    form = validation.parse_message(
        {
            "id": "0B5C7A51-0C3A-4A1E-9A36-3A0F7A1C1D11",
            "owner": "someone-else",
            "userName": "Mallory",
            "text": '<img src=x onerror="alert(1)"><script>alert(2)</script><b>bold</b>',
        },
        max_chars=4000,
    )
    assert str(form.id) == "0b5c7a51-0c3a-4a1e-9a36-3a0f7a1c1d11"
    assert "script" not in form.text and "onerror" not in form.text
    assert "<b>bold</b>" in form.text
    assert not hasattr(form, "owner")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "not-a-uuid", "text": "hi"}, "id"),
        ({"text": "hi"}, "id"),
        ({"id": "0b5c7a51-0c3a-4a1e-9a36-3a0f7a1c1d11"}, "text"),
        ({"id": "0b5c7a51-0c3a-4a1e-9a36-3a0f7a1c1d11", "text": "   "}, "text"),
        ({"id": "0b5c7a51-0c3a-4a1e-9a36-3a0f7a1c1d11", "text": "<script>x</script>"}, "text"),
        ({"id": "0b5c7a51-0c3a-4a1e-9a36-3a0f7a1c1d11", "text": "x" * 11}, "text"),
    ],
)
def test_bad_messages_are_refused(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validation.parse_message(body, max_chars=10)
    assert field in caught.value.fields


def test_history_query_defaults_and_bounds() -> None:
    assert validation.parse_history_query({}, 100, 500) == validation.HistoryQuery(100, None, None)
    assert validation.parse_history_query(
        {"limit": "500", "before": "9", "after": "2"}, 100, 500
    ) == (validation.HistoryQuery(500, 9, 2))


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "abc"},
        {"limit": "-1"},
        {"before": "x"},
        {"after": "1.5"},
        {"after": "9" * 19},
        {"before": "١٢"},
        {"limit": "1" * 4301},
        {"limit": "0" * 5000 + "5"},
        {"limit": "5\x00"},
    ],
)
def test_history_query_refuses_bad_parameters(query: dict[str, str]) -> None:
    with pytest.raises(ValidationFailed):
        validation.parse_history_query(query, 100, 500)


@pytest.mark.parametrize("field", ["name", "email", "password"])
def test_nul_characters_are_refused_before_reaching_the_database(field: str) -> None:
    body = {"name": "Ann", "email": "a@b.io", "password": "password1", field: "x\x00y@b.io"}
    with pytest.raises(ValidationFailed) as caught:
        validation.parse_signup(body)
    assert caught.value.fields == {field: "must not contain NUL characters"}
