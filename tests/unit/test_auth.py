"""Tokens: issued, verified, and refused with a reason a client can show."""

from __future__ import annotations

import time

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
ANN = Identity(user_id="u-1", name="Ann")


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
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None)],
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


@pytest.mark.parametrize("token", [None, "", "garbage", issue_token(ANN, "another-secret-another-secret-xx", 60)])
def test_the_verifier_refuses_what_verify_token_refuses(token: str | None) -> None:
    verifier = TokenVerifier(SECRET)
    for _ in range(2):  # a refusal is never remembered as a success
        with pytest.raises(InvalidToken):
            verifier.verify(token)


def test_the_verifier_stays_within_its_size() -> None:
    verifier = TokenVerifier(SECRET, max_entries=2)
    tokens = [issue_token(Identity(f"u-{i}", "Ann"), SECRET, 60) for i in range(5)]
    assert [verifier.verify(t).user_id for t in tokens] == [f"u-{i}" for i in range(5)]
    assert len(verifier._verified) == 2
