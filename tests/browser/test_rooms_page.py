"""Rooms and direct messages on the chat page, driven in headless Chromium (docs/ROOMS.md).

Three people sign in through the page: A on one gateway replica, B and C on the other
(see conftest.py), so every live update below crosses replicas through Redis. They
start a direct message by email, invite to a private room by name, remove a member,
browse and join a public room found by search, reconnect after missing messages in
several rooms, and use the phone layout. Screenshots
land in test-artifacts/rooms-*.png.

Skipped only when Chromium is missing (set CHAT_CHROMIUM to use another binary).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.helpers.browser import Route
from tests.helpers.pages import (
    DESKTOP,
    NEEDS_CHROMIUM,
    PHONE,
    assert_sorted_unique,
    ids_in_page,
    rest,
    send,
    watch,
)
from tests.helpers.rest import Api, User, sign_up_and_in
from tests.helpers.stack import ARTIFACTS

pytestmark = NEEDS_CHROMIUM


GLOBAL_ROOM = "00000000-0000-0000-0000-000000000000"


@dataclass
class Person:
    """An account signed in through the page of its own browser context."""

    user: User
    context: BrowserContext
    page: Page
    route: Route
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.user.name

    def room_item(self, name: str) -> Locator:
        """The room list's entry named exactly `name`."""
        return self.page.get_by_test_id("room-item").filter(
            has=self.page.get_by_test_id("room-item-name").get_by_text(name, exact=True)
        )

    def message(self, text: str) -> Locator:
        """The open room's message whose text is exactly `text`."""
        return self.page.get_by_test_id("message").filter(
            has=self.page.get_by_test_id("message-text").get_by_text(text, exact=True)
        )

    async def open_room(self, name: str) -> None:
        await self.room_item(name).get_by_test_id("room-item-button").click()
        await expect(self.page.get_by_test_id("room-title")).to_have_text(name)
        await expect(self.room_item(name)).to_have_attribute("data-active", "true")


async def sign_in(page: Page, user: User) -> None:
    """Sign in through the form; the page is live once the room list has loaded."""
    await expect(page.get_by_test_id("auth-view")).to_be_visible()
    await page.get_by_test_id("signin-email").fill(user.email)
    await page.get_by_test_id("signin-password").fill(user.password)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("current-user")).to_have_text(user.name)
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("rooms-loading")).to_be_hidden()
    await expect(page.get_by_test_id("rooms-error")).to_be_hidden()


async def create_room_in_page(page: Page, name: str, topic: str, kind: str) -> None:
    """The "New room" dialog; the new room opens."""
    await page.get_by_test_id("create-room-button").click()
    dialog = page.get_by_test_id("create-room-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_test_id("create-room-name").fill(name)
    await dialog.get_by_test_id("create-room-topic").fill(topic)
    await dialog.get_by_test_id(f"create-room-{kind}").check()
    await dialog.get_by_test_id("create-room-submit").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_test_id("room-title")).to_have_text(name)
    await expect(page.get_by_test_id("room-topic")).to_contain_text(topic)


async def find_person(page: Page, query: str, name: str) -> Locator:
    """Search the open people dialog; the one result named `name`."""
    dialog = page.get_by_test_id("people-dialog")
    await dialog.get_by_test_id("people-search").fill(query)
    await dialog.get_by_test_id("people-search-submit").click()
    result = dialog.get_by_test_id("person-result").filter(
        has=page.get_by_test_id("person-name").get_by_text(name, exact=True)
    )
    await expect(result).to_have_count(1)
    return result


@pytest.fixture(scope="module")
async def trio(
    browser: Browser, routes: tuple[Route, Route], web_api: Api
) -> AsyncIterator[tuple[Person, Person, Person]]:
    """A on one gateway replica, B and C on the other, each signed in through the page."""
    route_a, route_b = routes
    assert route_a.replica != route_b.replica
    people: list[Person] = []
    try:
        for label, route in (("Ann", route_a), ("Ben", route_b), ("Cleo", route_b)):
            user = await sign_up_and_in(web_api, f"{label} {uuid.uuid4().hex[:8]}")
            context = await browser.new_context(viewport=DESKTOP)
            page = await context.new_page()
            person = Person(user, context, page, route)
            watch(person.page, person.dialogs, person.errors)
            people.append(person)
            await page.goto(route.url + "/")
            await sign_in(page, user)
        a, b, c = people
        yield a, b, c
    finally:
        for p in people:
            await p.context.close()
    for p in people:
        assert p.dialogs == [] and p.errors == [], (p.name, p.dialogs, p.errors)


# ---- tests -------------------------------------------------------------------------------------


async def test_room_list_starts_with_general(trio: tuple[Person, Person, Person]) -> None:
    a, _, _ = trio
    general = a.room_item("General")
    await expect(general).to_have_count(1)
    await expect(general).to_have_attribute("data-active", "true")
    await expect(general).to_have_attribute("data-room-id", GLOBAL_ROOM)
    await expect(a.page.get_by_test_id("room-title")).to_have_text("General")
    # Nobody leaves, invites to or manages the global room.
    for control in ("leave-button", "invite-button", "members-button"):
        await expect(a.page.get_by_test_id(control)).to_be_hidden()


async def test_direct_messages_started_by_email(trio: tuple[Person, Person, Person]) -> None:
    """A finds B by exact email and writes; B sees the conversation appear and answers."""
    a, b, _ = trio
    tag = uuid.uuid4().hex[:8]
    hello, answer = f"Hello B, it is A {tag}", f"Hi A, B answering {tag}"

    await a.page.get_by_test_id("new-direct-button").click()
    result = await find_person(a.page, b.user.email, b.name)
    await result.get_by_test_id("person-action").click()
    await expect(a.page.get_by_test_id("people-dialog")).to_be_hidden()
    await expect(a.page.get_by_test_id("room-title")).to_have_text(b.name)
    await expect(a.page.get_by_test_id("room-kind")).to_have_text("Direct message")
    await expect(a.room_item(b.name)).to_have_attribute("data-kind", "direct")
    await expect(a.room_item(b.name)).to_have_attribute("data-active", "true")
    await send(a.page, hello)
    await expect(a.message(hello)).to_have_attribute("data-own", "true")

    # B was not looking: the conversation shows up in B's list, under A's name, with the
    # newest message, and B's open room (General) does not get it.
    dm = b.room_item(a.name)
    await expect(dm).to_have_count(1)
    await expect(dm).to_have_attribute("data-kind", "direct")
    await expect(dm.get_by_test_id("room-item-preview")).to_have_text(f"{a.name}: {hello}")
    await expect(b.page.get_by_test_id("room-title")).to_have_text("General")
    await expect(b.message(hello)).to_have_count(0)
    await b.open_room(a.name)
    await expect(b.message(hello)).to_have_attribute("data-own", "false")
    await send(b.page, answer)
    await expect(a.message(answer)).to_have_attribute("data-own", "false")
    await expect(a.room_item(b.name).get_by_test_id("room-item-preview")).to_have_text(
        f"{b.name}: {answer}"
    )

    # Opening the direct room again from B's side finds the same room, not a second one.
    room_id = await dm.get_attribute("data-room-id")
    await b.page.get_by_test_id("new-direct-button").click()
    result = await find_person(b.page, a.user.email, a.name)
    await result.get_by_test_id("person-action").click()
    await expect(b.page.get_by_test_id("room-title")).to_have_text(a.name)
    await expect(b.room_item(a.name)).to_have_count(1)
    await expect(b.room_item(a.name)).to_have_attribute("data-room-id", room_id or "")
    for p in (a, b):
        await expect(p.message(hello)).to_have_count(1)
        await expect(p.message(answer)).to_have_count(1)
        assert_sorted_unique(await ids_in_page(p.page))

    # Markup in a message is text in the room list too: nothing of it runs or renders.
    payload = f"<img src=x onerror=\"alert('xss-{tag}')\"><b>bold</b> &amp; more {tag}"
    await send(a.page, payload)
    preview = dm.get_by_test_id("room-item-preview")
    await expect(preview).to_have_text(f"{a.name}: bold & more {tag}")
    assert await preview.locator("*").count() == 0
    assert b.dialogs == [], b.dialogs

    ARTIFACTS.mkdir(exist_ok=True)
    await a.page.screenshot(path=str(ARTIFACTS / "rooms-direct-a.png"))
    await b.page.screenshot(path=str(ARTIFACTS / "rooms-direct-b.png"))

    # And the direct messages stayed out of General.
    await a.open_room("General")
    await expect(a.page.get_by_test_id("message-scroller")).to_have_attribute("aria-busy", "false")
    await expect(a.message(hello)).to_have_count(0)
    await expect(a.message(answer)).to_have_count(0)


async def test_invited_to_a_private_room_sees_it_live(trio: tuple[Person, Person, Person]) -> None:
    """A creates a private room and invites C by name; C sees it appear and gets its messages."""
    a, _, c = trio
    tag = uuid.uuid4().hex[:8]
    name, topic = f"Design {tag}", f"Weekly review {tag}"
    before, after = f"Posted before C came {tag}", f"Welcome C {tag}"

    await create_room_in_page(a.page, name, topic, "private")
    await expect(a.room_item(name).get_by_test_id("room-item-tag")).to_have_text("private")
    await send(a.page, before)
    await expect(c.room_item(name)).to_have_count(0)

    await a.page.get_by_test_id("invite-button").click()
    result = await find_person(a.page, c.name[:7], c.name)  # a name prefix
    action = result.get_by_test_id("person-action")
    await action.click()
    await expect(action).to_have_text("Added")
    await a.page.get_by_test_id("people-close").click()
    await expect(a.page.get_by_test_id("room-member-count")).to_contain_text("2 members")

    # C did nothing: the room appears in C's list, live, as private.
    item = c.room_item(name)
    await expect(item).to_have_count(1)
    await expect(item).to_have_attribute("data-kind", "private")
    await expect(c.page.get_by_test_id("room-title")).to_have_text("General")
    await send(a.page, after)
    await expect(item.get_by_test_id("room-item-preview")).to_have_text(f"{a.name}: {after}")
    await c.open_room(name)
    await expect(c.page.get_by_test_id("room-topic")).to_contain_text(topic)
    # The history before C joined is visible to C (docs/ROOMS.md), in order.
    await expect(c.message(before)).to_have_count(1)
    await expect(c.message(after)).to_have_count(1)
    live = f"Live in the private room {tag}"
    await send(a.page, live)
    await expect(c.message(live)).to_have_attribute("data-own", "false")
    assert_sorted_unique(await ids_in_page(c.page))
    # A member of a private room cannot invite; only owners and admins can.
    await expect(c.page.get_by_test_id("invite-button")).to_be_hidden()
    await expect(c.page.get_by_test_id("leave-button")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    await c.page.screenshot(path=str(ARTIFACTS / "rooms-private-c.png"))


async def test_removed_member_stops_receiving(
    trio: tuple[Person, Person, Person], web_api: Api
) -> None:
    """A removes B from a private room in the members panel: B is told, the room leaves
    B's list, and what A posts there afterwards never reaches B."""
    a, b, _ = trio
    tag = uuid.uuid4().hex[:8]
    name = f"Ops {tag}"
    room = await rest(
        web_api, "POST", "/rooms", a.user, {"name": name, "kind": "private", "members": [b.user.id]}
    )
    first, later, marker = f"Ops one {tag}", f"Ops after removal {tag}", f"General marker {tag}"

    for p in (a, b):
        await p.open_room(name)
    await send(a.page, first)
    await expect(b.message(first)).to_have_count(1)

    await a.page.get_by_test_id("members-button").click()
    panel = a.page.get_by_test_id("members-dialog")
    member = panel.get_by_test_id("member-item").filter(has_text=b.name)
    await expect(member.get_by_test_id("member-role")).to_have_text("Member")
    owner = panel.get_by_test_id("member-item").filter(has_text=a.name)
    await expect(owner.get_by_test_id("member-role")).to_have_text("Owner")
    await expect(owner.get_by_test_id("member-remove")).to_be_hidden()
    await member.get_by_test_id("member-remove").click()
    await expect(a.page.get_by_test_id("confirm-text")).to_contain_text(b.name)
    await a.page.get_by_test_id("confirm-ok").click()
    await expect(member).to_have_count(0)
    await panel.get_by_test_id("members-close").click()

    notice = b.page.get_by_test_id("room-notice")
    await expect(notice).to_be_visible()
    await expect(b.page.get_by_test_id("room-notice-text")).to_contain_text(
        f"You were removed from “{name}”"
    )
    await expect(b.room_item(name)).to_have_count(0)
    await expect(b.page.get_by_test_id("composer")).to_be_hidden()
    await expect(b.page.get_by_test_id("message")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    await b.page.screenshot(path=str(ARTIFACTS / "rooms-removed-b.png"))

    # B goes to General and waits there; A writes in the room, then in General. One
    # connection delivers in `_id` order, so once the marker is in, the room's message
    # would have been in before it.
    await b.page.get_by_test_id("room-notice-action").click()
    await expect(b.page.get_by_test_id("room-title")).to_have_text("General")
    await send(a.page, later)
    await a.open_room("General")
    await send(a.page, marker)
    await expect(b.message(marker)).to_have_count(1)
    await expect(b.room_item("General").get_by_test_id("room-item-preview")).to_have_text(
        f"{a.name}: {marker}"
    )
    await expect(b.page.get_by_text(later)).to_have_count(0)
    await expect(b.room_item(name)).to_have_count(0)
    # And the room is gone for B over REST too.
    reply = await web_api.request("GET", f"/rooms/{room['id']}/messages", token=b.user.token)
    assert reply.status == 404, (reply.status, reply.text)


async def test_browse_and_join_a_public_room(trio: tuple[Person, Person, Person]) -> None:
    """C finds B's public rooms by a search, pages through them and joins one."""
    a, b, c = trio
    tag = uuid.uuid4().hex[:8]
    names = [f"Lobby {tag} {i}" for i in range(3)]
    greeting = f"Welcome to the lobby {tag}"
    for i, name in enumerate(names):
        await create_room_in_page(b.page, name, f"Topic {i} {tag}", "public")
    await b.open_room(names[0])
    await send(b.page, greeting)

    # Pages of two: the server's own `next` cursor takes C to the last room.
    async def two_per_page(route) -> None:  # type: ignore[no-untyped-def]
        await route.continue_(url=re.sub(r"limit=\d+", "limit=2", route.request.url))

    await c.page.route(re.compile(r"/rooms/public\?"), two_per_page)
    try:
        await c.page.get_by_test_id("browse-rooms-button").click()
        dialog = c.page.get_by_test_id("browse-dialog")
        query = f"lobby {tag.upper()}"  # names match whatever their case
        await dialog.get_by_test_id("browse-search").fill(query)
        await expect(dialog.get_by_test_id("browse-results")).to_have_attribute("data-query", query)
        found = dialog.get_by_test_id("public-room")
        await expect(found).to_have_count(2)
        more = dialog.get_by_test_id("browse-more")
        await expect(more).to_be_visible()
        await more.click()
        await expect(found).to_have_count(3)
        await expect(more).to_be_hidden()
        shown = await dialog.get_by_test_id("public-room-name").all_inner_texts()
        assert sorted(shown) == sorted(names), shown
        # A search that matches nothing says so.
        await dialog.get_by_test_id("browse-search").fill(f"nothing-{tag}")
        await expect(dialog.get_by_test_id("browse-empty")).to_be_visible()
        await expect(found).to_have_count(0)
        await dialog.get_by_test_id("browse-search").fill(names[0])
        await expect(dialog.get_by_test_id("browse-results")).to_have_attribute(
            "data-query", names[0]
        )
        await expect(found).to_have_count(1)
        await expect(found.get_by_test_id("public-room-count")).to_have_text("1 member")
        ARTIFACTS.mkdir(exist_ok=True)
        await c.page.screenshot(path=str(ARTIFACTS / "rooms-browse.png"))
        join = found.get_by_test_id("public-room-join")
        await expect(join).to_have_text("Join")
        await join.click()
    finally:
        await c.page.unroute(re.compile(r"/rooms/public\?"), two_per_page)
    await expect(c.page.get_by_test_id("browse-dialog")).to_be_hidden()
    await expect(c.page.get_by_test_id("room-title")).to_have_text(names[0])
    await expect(c.room_item(names[0])).to_have_attribute("data-active", "true")
    await expect(c.message(greeting)).to_have_count(1)
    await expect(c.page.get_by_test_id("room-member-count")).to_contain_text("2 members")
    reply = f"Thanks B, C here {tag}"
    await send(c.page, reply)
    await expect(b.message(reply)).to_have_attribute("data-own", "false")
    # A is not in the room: only its own list, without the lobby.
    await expect(a.room_item(names[0])).to_have_count(0)

    # Leaving: the room leaves C's list and C is back in General.
    await c.page.get_by_test_id("leave-button").click()
    await c.page.get_by_test_id("confirm-ok").click()
    await expect(c.page.get_by_test_id("room-title")).to_have_text("General")
    await expect(c.room_item(names[0])).to_have_count(0)


async def test_reconnect_catches_up_in_every_room(
    trio: tuple[Person, Person, Person], web_api: Api
) -> None:
    """B's network path drops; meanwhile A writes in General and in their direct room, and
    adds B to a new room where A writes too. B reconnects with its one cursor: all of it
    arrives, each in its place."""
    a, b, _ = trio
    tag = uuid.uuid4().hex[:8]
    name = f"Missed {tag}"
    general, direct, fresh = f"General while away {tag}", f"Direct {tag}", f"New room {tag}"
    await b.open_room("General")
    status = b.page.get_by_test_id("connection-status")
    await expect(status).to_have_attribute("data-state", "live")
    b.route.forwarder.pause()
    try:
        await expect(status).to_have_attribute("data-state", re.compile("reconnecting|offline"))
        dm = await rest(web_api, "POST", "/rooms/direct", a.user, {"userId": b.user.id})
        room = await rest(
            web_api,
            "POST",
            "/rooms",
            a.user,
            {"name": name, "kind": "private", "members": [b.user.id]},
        )
        for room_id, text in ((GLOBAL_ROOM, general), (dm["id"], direct), (room["id"], fresh)):
            body = {"id": str(uuid.uuid4()), "text": text}
            await rest(web_api, "POST", f"/rooms/{room_id}/messages", a.user, body)
    finally:
        b.route.forwarder.resume()
    await expect(status).to_have_attribute("data-state", "live", timeout=30_000)
    await expect(b.message(general)).to_have_count(1)
    await expect(b.room_item(a.name).get_by_test_id("room-item-preview")).to_have_text(
        f"{a.name}: {direct}"
    )
    await expect(b.room_item(name).get_by_test_id("room-item-preview")).to_have_text(
        f"{a.name}: {fresh}"
    )
    await expect(b.room_item(name)).to_have_attribute("data-room-id", room["id"])
    assert_sorted_unique(await ids_in_page(b.page))
    await b.open_room(name)
    await expect(b.message(fresh)).to_have_count(1)
    # Live again afterwards, in the new room too.
    after = f"After the reconnect {tag}"
    await rest(
        web_api,
        "POST",
        f"/rooms/{room['id']}/messages",
        a.user,
        {"id": str(uuid.uuid4()), "text": after},
    )
    await expect(b.message(after)).to_have_count(1)
    assert_sorted_unique(await ids_in_page(b.page))


async def test_phone_shows_the_list_or_the_room(
    browser: Browser, trio: tuple[Person, Person, Person], web_api: Api
) -> None:
    """On a narrow screen: the room first, the back button to the list, a room to go back."""
    a, _, _ = trio
    tag = uuid.uuid4().hex[:8]
    name, text = f"Phone {tag}", f"Seen on a phone {tag}"
    room = await rest(web_api, "POST", "/rooms", a.user, {"name": name, "kind": "public"})
    await rest(
        web_api,
        "POST",
        f"/rooms/{room['id']}/messages",
        a.user,
        {"id": str(uuid.uuid4()), "text": text},
    )
    state = await a.context.storage_state()
    phone = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, storage_state=state
    )
    try:
        page = await phone.new_page()
        await page.goto(a.route.url + "/")
        sidebar, pane = page.get_by_test_id("room-sidebar"), page.get_by_test_id("room-pane")
        back = page.get_by_test_id("back-to-rooms")
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "live"
        )
        await expect(pane).to_be_visible()
        await expect(sidebar).to_be_hidden()
        await expect(page.get_by_test_id("room-title")).to_have_text("General")

        await back.click()
        await expect(sidebar).to_be_visible()
        await expect(pane).to_be_hidden()
        item = page.get_by_test_id("room-item").filter(
            has=page.get_by_test_id("room-item-name").get_by_text(name, exact=True)
        )
        await expect(item.get_by_test_id("room-item-preview")).to_have_text(f"You: {text}")
        await page.screenshot(path=str(ARTIFACTS / "rooms-phone-list.png"))
        await item.get_by_test_id("room-item-button").click()
        await expect(pane).to_be_visible()
        await expect(sidebar).to_be_hidden()
        await expect(page.get_by_test_id("room-title")).to_have_text(name)
        await expect(
            page.get_by_test_id("message-text").get_by_text(text, exact=True)
        ).to_be_visible()
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"page is {overflow}px wider than the phone screen"
        await page.screenshot(path=str(ARTIFACTS / "rooms-phone-room.png"))

        await back.click()
        await expect(sidebar).to_be_visible()
        await expect(item).to_have_attribute("data-active", "true")
        await expect(pane).to_be_hidden()
    finally:
        await phone.close()
