"""Who is calling: the client address behind the trusted load balancer.

Per-address limits (sign-in, sign-up, gateway sessions) are only as good as the
address they count. The peer of a request is the load balancer, so the client's
address comes from `X-Forwarded-For`, and only the hops that the trusted proxies added
can be believed: a client can send the header itself. Every `X-Forwarded-For` header
of the request is read (a proxy that appends a second header instead of extending the
first must not leave the client's own header in charge), joined in order, and walked
from the right; the first hop that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressError(ValueError):
    """A configured network is not a valid address or network."""


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """`TRUSTED_PROXIES`-style entries as networks (a bare address is a /32 or /128)."""
    try:
        return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)
    except ValueError as exc:
        raise AddressError(str(exc)) from None


def forwarded_hops(header_values: Sequence[str]) -> list[str]:
    """Every hop named by all the `X-Forwarded-For` headers, left to right."""
    return [hop.strip() for value in header_values for hop in value.split(",") if hop.strip()]


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IpNetwork]
) -> str:
    """The caller's address: the peer, or the right-most hop a trusted proxy vouches for.

    `forwarded_for` holds the values of every `X-Forwarded-For` header in order.
    """
    peer = peer or "unknown"
    if not is_trusted(peer, trusted):
        return peer
    hops = forwarded_hops(forwarded_for)
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def forwarded_for_values(headers: Mapping[str, str]) -> list[str]:
    """All `X-Forwarded-For` values of an aiohttp/multidict header map (one per header)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall("X-Forwarded-For", []))
    value = headers.get("X-Forwarded-For")
    return [value] if value else []


def is_trusted(address: str, trusted: Sequence[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
