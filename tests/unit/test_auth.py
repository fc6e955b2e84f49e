"""Tokens: issued, verified, and refused with a reason a client can show."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from services.realtime_service.handshake import token_from_handshake
from services.shared.auth import (
    Identity,
    InvalidToken,
    TokenVerifier,
    bearer_token,
    issue_token,
    verify_token,
)

SECRET = "unit-test-secret-unit-test-secret"
ANN = Identity(user_id="0b8f2f0e-8f55-4d5c-9c1e-0d8f1f2a3b4c", name="Ann")
DAY = 24 * 3600


def signed(**claims: object) -> str:
    """A token with exactly these claims, signed with the right secret."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_token_round_trips_the_identity() -> None:
    assert verify_token(issue_token(ANN, SECRET, 60), SECRET) == ANN


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing token"),
        ("", "missing token"),
        ("garbage", "invalid token"),
        (issue_token(ANN, "another-secret-another-secret-xx", 60), "invalid token"),
        (issue_token(ANN, SECRET, 60, now=0), "token expired"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str | None, reason: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        verify_token(token, SECRET)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_bearer_header_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_handshake_takes_the_token_from_auth_header_or_query() -> None:
    assert token_from_handshake({}, {"token": "from-auth"}) == "from-auth"
    assert token_from_handshake({}, {"token": "Bearer from-auth"}) == "from-auth"
    assert token_from_handshake({"HTTP_AUTHORIZATION": "Bearer from-header"}, None) == "from-header"
    assert token_from_handshake({"QUERY_STRING": "EIO=4&token=from-query"}, None) == "from-query"
    assert token_from_handshake({"QUERY_STRING": "EIO=4"}, {"other": 1}) is None


def test_the_verifier_remembers_a_token_only_until_it_expires() -> None:
    verifier = TokenVerifier(SECRET)
    token = issue_token(ANN, SECRET, 60, now=time.time())
    assert verifier.verify(token) == ANN
    assert verifier.verify(token, now=time.time() + 30) == ANN  # a hit
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token, now=time.time() + 61)
    assert caught.value.reason == "token expired"


@pytest.mark.parametrize(
    "token", [None, "", "garbage", issue_token(ANN, "another-secret-another-secret-xx", 60)]
)
def test_the_verifier_refuses_what_verify_token_refuses(token: str | None) -> None:
    verifier = TokenVerifier(SECRET)
    for _ in range(2):  # a refusal is never remembered as a success
        with pytest.raises(InvalidToken):
            verifier.verify(token)


def test_the_verifier_stays_within_its_size() -> None:
    verifier = TokenVerifier(SECRET, max_entries=2)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    tokens = [issue_token(Identity(user_id, "Ann"), SECRET, 60) for user_id in ids]
    assert [verifier.verify(t).user_id for t in tokens] == ids
    assert len(verifier._verified) == 2


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": ANN.user_id, "name": "Ann", "exp": _now() + 3600}, "invalid token"),  # no iat
        (
            {"sub": ANN.user_id, "name": "Ann", "iat": _now(), "exp": _now() + 365 * DAY},
            "token lifetime too long",
        ),
        (
            {"sub": ANN.user_id, "name": "Ann", "iat": _now() + DAY, "exp": _now() + DAY + 60},
            "invalid token",
        ),
        ({"sub": "1 OR 1=1", "name": "Ann", "iat": _now(), "exp": _now() + 3600}, "invalid token"),
        (
            {
                "sub": "0b8f2f0e8f554d5c9c1e0d8f1f2a3b4c",
                "name": "Ann",
                "iat": _now(),
                "exp": _now() + 3600,
            },
            "invalid token",
        ),
    ],
    ids=["no-iat", "year-long", "issued-in-the-future", "sub-not-a-uuid", "sub-not-canonical"],
)
def test_tokens_with_unbounded_lifetime_or_odd_subjects_are_refused(
    claims: dict[str, object], reason: str
) -> None:
    token = signed(**claims)
    with pytest.raises(InvalidToken) as caught:
        verify_token(token, SECRET)
    assert caught.value.reason == reason
    with pytest.raises(InvalidToken):
        TokenVerifier(SECRET).verify(token)


def test_the_lifetime_cap_is_a_setting() -> None:
    token = issue_token(ANN, SECRET, 2 * DAY)
    with pytest.raises(InvalidToken):
        verify_token(token, SECRET)  # the default cap: 25 hours
    assert verify_token(token, SECRET, max_lifetime=2 * DAY) == ANN
    assert TokenVerifier(SECRET, max_lifetime=2 * DAY).verify(token) == ANN


def test_a_name_with_markup_in_an_old_token_goes_out_as_plain_text() -> None:
    token = issue_token(Identity(ANN.user_id, "<img src=x onerror=alert(1)>"), SECRET, 60)
    name = verify_token(token, SECRET).name
    assert "<" not in name and ">" not in name
