"""Sign-up, sign-in and /users/me as the existing client calls them, including every refusal."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from tests.helpers.rest import Api, assert_error, expired_token, reissued, unique_email, unique_name


async def test_signup_returns_201_with_public_fields_only(api: Api) -> None:
    email = unique_email()
    password = "correct horse battery"
    reply = await api.signup("Alice", email, password)
    assert reply.status == 201, reply.text
    body = reply.body
    assert isinstance(body["_id"], str) and body["_id"]
    assert body["name"] == "Alice"
    assert body["email"] == email
    # Nothing about the password may leak, neither the value nor its hash.
    lowered = reply.text.lower()
    assert password not in reply.text
    assert "argon2" not in lowered and "password" not in lowered and "hash" not in lowered

    signin = await api.signin(email, password)
    assert signin.status == 200, signin.text
    assert str(signin.body["userId"]) == body["_id"]


@pytest.mark.parametrize("name", ["Al", "N" * 30])
async def test_signup_accepts_names_at_the_length_bounds(api: Api, name: str) -> None:
    reply = await api.signup(name, unique_email(), "long enough password")
    assert reply.status == 201, reply.text
    assert reply.body["name"] == name


async def test_signup_duplicate_email_is_409(api: Api) -> None:
    email = unique_email()
    assert (await api.signup("First", email, "password one")).status == 201
    assert_error(await api.signup("Second", email, "password two"), 409)


async def test_signup_duplicate_email_differing_only_in_case_is_409(api: Api) -> None:
    email = unique_email("casey")
    assert (await api.signup("Lower", email, "password one")).status == 201
    assert_error(await api.signup("Upper", email.upper(), "password two"), 409)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "A", "email": "GEN", "password": "long enough pw"}, id="name-1-char"),
        pytest.param(
            {"name": "N" * 31, "email": "GEN", "password": "long enough pw"}, id="name-31-chars"
        ),
        pytest.param({"email": "GEN", "password": "long enough pw"}, id="name-missing"),
        pytest.param(
            {"name": "Bob", "email": "not-an-email", "password": "long enough pw"}, id="bad-email"
        ),
        pytest.param(
            {"name": "Bob", "email": "bob@", "password": "long enough pw"}, id="bad-email-2"
        ),
        pytest.param({"name": "Bob", "password": "long enough pw"}, id="email-missing"),
        pytest.param({"name": "Bob", "email": "GEN", "password": "abc"}, id="short-password"),
        pytest.param({"name": "Bob", "email": "GEN"}, id="password-missing"),
        pytest.param(
            {"name": 42, "email": "GEN", "password": "long enough pw"}, id="name-not-string"
        ),
    ],
)
async def test_signup_invalid_input_is_400(api: Api, body: dict) -> None:
    email = unique_email()
    body = {k: (email if v == "GEN" else v) for k, v in body.items()}
    assert_error(await api.request("POST", "/signup", json=body), 400)
    # ...and nothing was created: the address is still free for a valid sign-up.
    assert (await api.signup("Valid Name", email, "long enough pw")).status == 201


@pytest.mark.parametrize("path", ["/signup", "/signin", "/messages"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param("[1, 2, 3]", id="json-array"),
        pytest.param('"a string"', id="json-string"),
        pytest.param("null", id="json-null"),
    ],
)
async def test_malformed_bodies_are_400_json(api: Api, new_user, path: str, raw: str) -> None:
    user = await new_user()
    token = user.token if path == "/messages" else None
    reply = await api.request(
        "POST", path, data=raw, token=token, headers={"Content-Type": "application/json"}
    )
    assert_error(reply, 400)


async def test_signin_returns_token_user_id_and_name(api: Api) -> None:
    email, name = unique_email(), unique_name()
    up = await api.signup(name, email, "a fine password")
    reply = await api.signin(email, "a fine password")
    assert reply.status == 200, reply.text
    assert set(reply.body) >= {"token", "userId", "name"}
    assert str(reply.body["userId"]) == up.body["_id"]
    assert reply.body["name"] == name
    assert isinstance(reply.body["token"], str) and reply.body["token"].count(".") == 2


async def test_signin_email_is_case_insensitive(api: Api) -> None:
    email = unique_email()
    await api.signup("Case", email, "a fine password")
    assert (await api.signin(email.upper(), "a fine password")).status == 200


async def test_signin_unknown_email_and_wrong_password_are_indistinguishable(api: Api) -> None:
    email = unique_email()
    await api.signup("Known", email, "the right password")
    wrong_password = assert_error(await api.signin(email, "the wrong password"), 401)
    unknown_email = assert_error(await api.signin(unique_email(), "the right password"), 401)
    assert wrong_password == unknown_email


async def test_users_me_returns_the_signed_in_user(api: Api, new_user) -> None:
    user = await new_user()
    reply = await api.request("GET", "/users/me", token=user.token)
    assert reply.status == 200, reply.text
    assert reply.body["name"] == user.name
    assert reply.body["email"] == user.email
    assert str(reply.body["user_id"]) == user.id


async def test_users_me_without_token_is_401(api: Api) -> None:
    assert_error(await api.request("GET", "/users/me"), 401)


@pytest.mark.parametrize(
    "header", ["Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer"]
)
async def test_users_me_with_garbage_token_is_401(api: Api, header: str) -> None:
    assert_error(await api.request("GET", "/users/me", headers={"Authorization": header}), 401)


async def test_users_me_with_expired_token_is_401(api: Api, new_user, jwt_secret: str) -> None:
    user = await new_user()
    # Control: the same claims re-signed with the real secret are accepted, so the
    # refusal below is about expiry alone.
    same = await api.request("GET", "/users/me", token=reissued(user.token, jwt_secret))
    assert same.status == 200, same.text
    expired = await api.request("GET", "/users/me", token=expired_token(user.token, jwt_secret))
    assert_error(expired, 401)


async def test_users_me_with_token_from_another_secret_is_401(api: Api, new_user) -> None:
    user = await new_user()
    forged = reissued(user.token, f"not-the-secret-{uuid.uuid4().hex}")
    assert_error(await api.request("GET", "/users/me", token=forged), 401)


async def test_users_me_with_alg_none_token_is_401(api: Api, new_user) -> None:
    user = await new_user()
    now = int(time.time())
    claims = {"sub": user.id, "name": user.name, "iat": now, "exp": now + 600}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    assert_error(await api.request("GET", "/users/me", token=unsigned), 401)


async def test_rest_is_served_through_the_load_balancer(lb_api: Api) -> None:
    """The React client uses ONE base URL: REST must answer through the public entry point."""
    email = unique_email()
    assert (await lb_api.signup("Via LB", email, "password via lb")).status == 201
    signin = await lb_api.signin(email, "password via lb")
    assert signin.status == 200, signin.text
    me = await lb_api.request("GET", "/users/me", token=signin.body["token"])
    assert me.status == 200 and me.body["email"] == email


async def test_a_name_with_markup_is_refused_at_signup_with_422_naming_the_field(api: Api) -> None:
    reply = await api.signup("<img src=x onerror=alert(1)>", unique_email(), "password-123")
    assert_error(reply, 422)
    assert set(reply.body["fields"]) == {"name"}
