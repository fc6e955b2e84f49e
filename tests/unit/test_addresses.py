"""The client address behind the load balancer: a client cannot choose its own."""

from __future__ import annotations

from services.shared.addresses import client_address, parse_networks

LB = parse_networks(["127.0.0.1/32"])


def test_an_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], LB) == "203.0.113.9"


def test_the_hop_the_trusted_proxy_added_is_the_client() -> None:
    assert client_address("127.0.0.1", ["198.51.100.1, 203.0.113.9"], LB) == "203.0.113.9"


def test_a_second_header_appended_by_the_proxy_wins_over_the_clients_own() -> None:
    # HAProxy's `option forwardfor` adds its own header after the one the client sent.
    spoofed_then_real = ["198.51.100.1", "203.0.113.9"]
    assert client_address("127.0.0.1", spoofed_then_real, LB) == "203.0.113.9"


def test_only_trusted_hops_fall_back_to_the_first() -> None:
    assert client_address("127.0.0.1", ["127.0.0.1"], LB) == "127.0.0.1"
    assert client_address("127.0.0.1", [], LB) == "127.0.0.1"
    assert client_address(None, [], LB) == "unknown"
