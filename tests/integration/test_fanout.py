"""Live delivery: across gateway replicas, through the sticky load balancer, under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from tests.helpers.rest import Api, User
from tests.helpers.sockets import ChatSocket, SocketFactory, by_owner

SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 10)]


async def test_message_reaches_clients_on_both_gateways(
    api: Api, sockets: SocketFactory, new_user, gateway_urls: tuple[str, str]
) -> None:
    alice, bob = await new_user(), await new_user()
    on_first = await sockets.connect(alice.token, gateway_urls[0], transports=["websocket"])
    on_second = await sockets.connect(bob.token, gateway_urls[1], transports=["websocket"])
    assert on_first.transport == on_second.transport == "websocket"

    sent = await api.send(alice, "hello across replicas")
    for sock in (on_first, on_second):
        got = await sock.next_message(by_owner(alice))
        assert got == sent


async def test_react_client_handshake_through_the_load_balancer(
    api: Api, sockets: SocketFactory, new_user
) -> None:
    """Default transports and the token as a header: polling first, then the upgrade."""
    user = await new_user()
    sock = await sockets.connect(user.token, auth_style="header", transports=None)
    assert sock.sio.connected
    assert sock.transport == "websocket"
    sent = [await api.send(user, f"after upgrade {i}") for i in range(3)]
    got = await sock.collect(3, by_owner(user))
    assert [m["_id"] for m in got] == [m["_id"] for m in sent]


async def test_polling_clients_from_many_addresses_stay_on_their_replica(
    api: Api, sockets: SocketFactory, new_user
) -> None:
    """Affinity by client address, no cookies: long-polling works for every client.

    With round-robin balancing the polling requests of one Engine.IO session would land on
    both replicas and fail with "Session ID unknown"; eight source addresses hashed onto
    two replicas exercise both of them.
    """
    user = await new_user()
    clients = await asyncio.gather(
        *(
            sockets.connect(user.token, transports=["polling"], local_addr=ip)
            for ip in SOURCE_ADDRESSES
        )
    )
    assert all(c.transport == "polling" for c in clients)
    sent = [await api.send(user, f"to polling clients {i}") for i in range(3)]
    for ip, client in zip(SOURCE_ADDRESSES, clients, strict=True):
        got = await client.collect(3, by_owner(user))
        assert [m["_id"] for m in got] == [m["_id"] for m in sent], ip
    # Still connected afterwards: no session was lost between replicas mid-way.
    assert all(c.sio.connected for c in clients)


async def test_client_emitted_send_all_messages_is_not_rebroadcast(
    api: Api, sockets: SocketFactory, new_user, gateway_urls: tuple[str, str]
) -> None:
    """The old server echoed this unsaved payload to everyone; anyone could forge messages."""
    mallory, alice = await new_user(), await new_user()
    forger = await sockets.connect(mallory.token, gateway_urls[0], transports=["websocket"])
    same_gateway = await sockets.connect(alice.token, gateway_urls[0], transports=["websocket"])
    other_gateway = await sockets.connect(alice.token, gateway_urls[1], transports=["websocket"])
    via_lb = await sockets.connect(alice.token)

    forged = {
        "_id": "999999999",
        "id": str(uuid.uuid4()),
        "owner": alice.id,
        "userName": alice.name,
        "text": "forged by mallory",
    }
    await forger.emit("sendAllMessages", forged)
    sentinel = await api.send(mallory, "sentinel after the forgery")

    everyone = by_owner(alice, mallory)
    for sock in (forger, same_gateway, other_gateway, via_lb):
        first = await sock.next_message(everyone)
        assert first["_id"] == sentinel["_id"], first


async def test_concurrent_posts_reach_every_client_exactly_once_in_order(
    api: Api, sockets: SocketFactory, new_user, gateway_urls: tuple[str, str]
) -> None:
    alice, bob = await new_user(), await new_user()
    senders = (alice, bob)
    clients = [
        await sockets.connect(alice.token, gateway_urls[0], transports=["websocket"]),
        await sockets.connect(bob.token, gateway_urls[1], transports=["websocket"]),
        await sockets.connect(alice.token, gateway_urls[1], transports=["polling"]),
        await sockets.connect(bob.token),  # through the load balancer, default transports
    ]

    posts = [api.send(user, f"burst {user.name} {i}") for i in range(20) for user in senders]
    sent = await asyncio.gather(*posts)
    sent_ids = {m["_id"] for m in sent}
    assert len(sent_ids) == 40
    # A sentinel posted after every acknowledgement: once a client has it, any duplicate
    # of the burst that was going to arrive before it has arrived.
    sentinel = await api.send(alice, "sentinel after the burst")

    for n, client in enumerate(clients):
        received = await _receive_until(client, sentinel["_id"], senders)
        counts = Counter(m["_id"] for m in received)
        assert set(counts) == sent_ids, f"client {n}: missing {sent_ids - set(counts)}"
        assert max(counts.values()) == 1, f"client {n}: duplicates {counts.most_common(3)}"
        for user in senders:
            order = [int(m["_id"]) for m in received if str(m["owner"]) == user.id]
            assert order == sorted(order), f"client {n}: {user.name} out of order: {order}"


async def _receive_until(sock: ChatSocket, last_id: str, users: tuple[User, ...]) -> list[dict]:
    """Every message of `users` up to (excluding) the one with `last_id`."""
    received: list[dict] = []

    async def run() -> None:
        while True:
            msg = await sock.next_message(by_owner(*users), timeout=30)
            if msg["_id"] == last_id:
                return
            received.append(msg)

    await asyncio.wait_for(run(), 60)
    return received
