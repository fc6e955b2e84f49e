"""What a connecting client presents: its token, its `lastId`, whether it wants rooms.

Clients present it three ways, all accepted: the existing React client sends an
`Authorization: Bearer` header on the polling handshake; the official clients'
`auth: {token}` payload; and `?token=` in the URL for clients that can set neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from services.shared.auth import bearer_token


def token_from_handshake(environ: Mapping[str, Any], auth: Any) -> str | None:
    """The first token found in the auth payload, the Authorization header or the query."""
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token.strip():
            return bearer_token(token) or token.strip()
    header = bearer_token(environ.get("HTTP_AUTHORIZATION"))
    if header:
        return header
    query = parse_qs(environ.get("QUERY_STRING", ""))
    tokens = query.get("token")
    return tokens[0] if tokens and tokens[0] else None


class InvalidLastId(ValueError):
    """`lastId` was given but is not a message `_id`."""


def last_id_from_handshake(environ: Mapping[str, Any], auth: Any) -> int | None:
    """The `_id` of the last message a reconnecting client holds, if it sent one.

    Taken from `auth: {lastId}` or `?last_id=`; clients without it (the existing React
    client) are not recovered, they simply receive live messages.
    """
    raw: Any = auth.get("lastId") if isinstance(auth, Mapping) else None
    if raw is None:
        values = parse_qs(environ.get("QUERY_STRING", "")).get("last_id")
        raw = values[0] if values else None
    if raw is None or raw == "":
        return None
    text = str(raw)
    if isinstance(raw, bool) or not text.isascii() or not text.isdigit() or len(text) > 18:
        raise InvalidLastId(text[:40])
    return int(text)


def rooms_from_handshake(environ: Mapping[str, Any], auth: Any) -> bool:
    """Did the client ask for rooms (`auth: {rooms: true}` or `?rooms=1`)? See docs/ROOMS.md.

    Without it a connection is a legacy one: the global room's messages as
    `getAllmessages`, and nothing else.
    """
    raw: Any = auth.get("rooms") if isinstance(auth, Mapping) else None
    if raw is None:
        values = parse_qs(environ.get("QUERY_STRING", "")).get("rooms")
        raw = values[0] if values else None
    return raw is True or (isinstance(raw, str) and raw.strip().lower() in ("1", "true"))
