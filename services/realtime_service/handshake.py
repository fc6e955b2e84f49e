"""Finding the token a connecting client presents.

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
