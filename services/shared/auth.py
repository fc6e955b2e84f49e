"""JSON Web Tokens: issued by the API at sign-in, checked by both services.

HS256 with a shared secret keeps the gateways stateless: they verify a token without a
database round trip. Claims: `sub` (user id), `name` (display name), `iat`, `exp`.

A token may claim at most `max_lifetime` seconds between `iat` and `exp`, and may not be
issued in the future: whoever learns the secret, or finds a bug in issuing, still cannot
mint a token that outlives the revocation marks (services/shared/redis_contract.py), whose
TTL is that same maximum. `sub` must be a UUID: every query casts it to one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from services.shared.config import DEFAULT_JWT_MAX_LIFETIME_SECONDS
from services.shared.names import plain_name

ALGORITHM = "HS256"
CLOCK_SKEW_SECONDS = 60  # how far in the future `iat` may be (clocks of several hosts)


class InvalidToken(Exception):
    """The token is missing, malformed, forged or expired; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who a request or a socket belongs to, taken only from a verified token."""

    user_id: str
    name: str


def issue_token(identity: Identity, secret: str, ttl_seconds: int, now: float | None = None) -> str:
    """Sign a token for `identity` that expires after `ttl_seconds`."""
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": identity.user_id,
        "name": identity.name,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(
    token: str | None, secret: str, max_lifetime: int = DEFAULT_JWT_MAX_LIFETIME_SECONDS
) -> Identity:
    """Return the identity in a valid token or raise InvalidToken with a clear reason."""
    return _decode(token, secret, max_lifetime)[0]


def _decode(token: str | None, secret: str, max_lifetime: int) -> tuple[Identity, float]:
    """The identity in a valid token and the time it expires at."""
    if not token:
        raise InvalidToken("missing token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat", "name"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("invalid token") from None
    user_id, name = claims.get("sub"), claims.get("name")
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(user_id, str) or not isinstance(name, str) or not _is_uuid(user_id):
        raise InvalidToken("invalid token")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise InvalidToken("invalid token")
    if expires - issued > max_lifetime or issued > time.time() + CLOCK_SKEW_SECONDS:
        raise InvalidToken("token lifetime too long")
    # Tokens issued before names were checked may carry markup: it never goes out.
    return Identity(user_id=user_id, name=plain_name(name)), float(expires)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()  # the canonical form only
    except ValueError:
        return False


class TokenVerifier:
    """`verify_token` that remembers the tokens it has verified until they expire.

    A client sends the same token with every request; checking its signature and
    decoding its claims again each time was a tenth of the API's CPU per message. The
    signature of a given token under a given secret never changes, so a hit only needs
    the expiry checked. Bounded: when full, the oldest entries make room.
    """

    def __init__(
        self,
        secret: str,
        max_lifetime: int = DEFAULT_JWT_MAX_LIFETIME_SECONDS,
        max_entries: int = 10_000,
    ) -> None:
        self._secret = secret
        self._max_lifetime = max_lifetime
        self._max_entries = max_entries
        self._verified: dict[str, tuple[Identity, float]] = {}

    def verify(self, token: str | None, now: float | None = None) -> Identity:
        """The identity in `token`, or InvalidToken as from `verify_token`."""
        if not token:
            raise InvalidToken("missing token")
        hit = self._verified.get(token)
        if hit is not None:
            identity, expires = hit
            if (time.time() if now is None else now) < expires:
                return identity
            del self._verified[token]
            raise InvalidToken("token expired")  # its `exp` is signed: expired for good
        identity, expires = _decode(token, self._secret, self._max_lifetime)
        while len(self._verified) >= self._max_entries:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (identity, expires)
        return identity


def bearer_token(authorization: str | None) -> str | None:
    """Extract the token from an `Authorization: Bearer <token>` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
