"""Live room state on the chat page, driven in headless Chromium (docs/ROOM_STATE.md).

Ann's page talks to one gateway replica and Ben's to the other (see conftest.py), so
every change below crosses replicas through Redis: edits, deletions, replies and
reactions made in one page show in the other; typing shows and goes away; an unread
badge appears for a message in a room not open and clears when the same user reads it
on a second device; a direct room says "Seen" once the other person has read; and the
dot of a direct room's other person goes online and offline. Screenshots land in
test-artifacts/state-*.png.

Skipped only when Chromium is missing (set CHAT_CHROMIUM to use another binary).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.helpers.browser import Route
from tests.helpers.pages import DESKTOP, NEEDS_CHROMIUM, PHONE, rest, send, watch
from tests.helpers.rest import Api, User, sign_up_and_in
from tests.helpers.stack import ARTIFACTS

pytestmark = NEEDS_CHROMIUM


# How long a user whose last connection closed still counts as online, plus a sweep
# (docs/ROOM_STATE.md, "Presence": OFFLINE_GRACE_SECONDS 5 s, a sweep within 1 s).
OFFLINE_WITHIN_MS = 20_000


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
        return room_item(self.page, name)

    def message(self, text: str) -> Locator:
        """The open room's message whose text is exactly `text`."""
        return message(self.page, text)

    async def open_room(self, name: str) -> None:
        await open_room(self.page, name)


def room_item(page: Page, name: str) -> Locator:
    return page.get_by_test_id("room-item").filter(
        has=page.get_by_test_id("room-item-name").get_by_text(name, exact=True)
    )


def message(page: Page, text: str) -> Locator:
    return page.get_by_test_id("message").filter(
        has=page.get_by_test_id("message-text").get_by_text(text, exact=True)
    )


async def open_room(page: Page, name: str) -> None:
    await room_item(page, name).get_by_test_id("room-item-button").click()
    await expect(page.get_by_test_id("room-title")).to_have_text(name)
    await expect(room_item(page, name)).to_have_attribute("data-active", "true")
    await expect(page.get_by_test_id("message-scroller")).to_have_attribute("aria-busy", "false")


async def sign_in(page: Page, user: User) -> None:
    """Sign in through the form; the page is live once the room list has loaded."""
    await expect(page.get_by_test_id("auth-view")).to_be_visible()
    await page.get_by_test_id("signin-email").fill(user.email)
    await page.get_by_test_id("signin-password").fill(user.password)
    await page.get_by_test_id("signin-submit").click()
    await is_live(page, user)


async def is_live(page: Page, user: User) -> None:
    await expect(page.get_by_test_id("current-user")).to_have_text(user.name)
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("rooms-loading")).to_be_hidden()
    await expect(page.get_by_test_id("rooms-error")).to_be_hidden()


async def act(item: Locator, action: str) -> None:
    """Point at a message (its actions show on hover) and press one of them."""
    await item.hover()
    button = item.get_by_test_id(f"message-{action}-button")
    await expect(button).to_be_visible()
    await button.click()


async def react(item: Locator, emoji: str) -> None:
    await act(item, "react")
    picker = item.get_by_test_id("reaction-picker")
    await expect(picker).to_be_visible()
    await picker.locator(f'[data-emoji="{emoji}"]').click()
    await expect(picker).to_be_hidden()


def reaction(item: Locator, emoji: str) -> Locator:
    return item.locator(f'[data-testid="reaction"][data-emoji="{emoji}"]')


async def post(api: Api, user: User, room_id: str, text: str) -> dict[str, Any]:
    body = {"id": str(uuid.uuid4()), "text": text}
    return dict(await rest(api, "POST", f"/rooms/{room_id}/messages", user, body))


async def new_person(browser: Browser, api: Api, route: Route, label: str) -> Person:
    user = await sign_up_and_in(api, f"{label} {uuid.uuid4().hex[:8]}")
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    person = Person(user, context, page, route)
    watch(person.page, person.dialogs, person.errors)
    await page.goto(route.url + "/")
    await sign_in(page, user)
    return person


async def second_device(browser: Browser, person: Person, **options: Any) -> Page:
    """Another browser context signed in as the same user (the session is copied)."""
    state = await person.context.storage_state()
    context = await browser.new_context(storage_state=state, **({"viewport": DESKTOP} | options))
    page = await context.new_page()
    page.on("pageerror", lambda exc: person.errors.append(f"second device: {exc}"))
    await page.goto(person.route.url + "/")
    await is_live(page, person.user)
    return page


@pytest.fixture(scope="module")
async def pair(
    browser: Browser, routes: tuple[Route, Route], web_api: Api
) -> AsyncIterator[tuple[Person, Person]]:
    """Ann on one gateway replica, Ben on the other, each signed in through the page."""
    route_a, route_b = routes
    assert route_a.replica != route_b.replica
    people: list[Person] = []
    try:
        for label, route in (("Ann", route_a), ("Ben", route_b)):
            people.append(await new_person(browser, web_api, route, label))
        a, b = people
        yield a, b
    finally:
        for p in people:
            await p.context.close()
    for p in people:
        assert p.dialogs == [] and p.errors == [], (p.name, p.dialogs, p.errors)


async def direct_room(api: Api, a: Person, b: Person) -> dict[str, Any]:
    """Their direct room, opened over REST; both pages list it under the other's name."""
    room = dict(await rest(api, "POST", "/rooms/direct", a.user, {"userId": b.user.id}))
    await expect(a.room_item(b.name)).to_have_attribute("data-room-id", room["id"])
    await expect(b.room_item(a.name)).to_have_attribute("data-room-id", room["id"])
    return room


# ---- tests -------------------------------------------------------------------------------------


async def test_edit_delete_reply_and_react_reach_the_other_side(
    pair: tuple[Person, Person], web_api: Api
) -> None:
    """In a group room: Ben replies to Ann's message, Ann edits it, both react, Ann deletes
    it; each step shows live in the other page, and again from history after a reload."""
    a, b = pair
    tag = uuid.uuid4().hex[:8]
    name = f"Changes {tag}"
    await rest(
        web_api, "POST", "/rooms", a.user, {"name": name, "kind": "private", "members": [b.user.id]}
    )
    original, kept = f"Lunch at noon {tag}", f"This one stays {tag}"
    answer, fixed = f"Noon works {tag}", f"Lunch at one {tag}"
    for p in (a, b):
        await expect(p.room_item(name)).to_have_count(1)
        await p.open_room(name)
    await send(a.page, original)
    await send(a.page, kept)
    await expect(b.message(kept)).to_have_count(1)

    # Reply: Ben quotes Ann's message; the quote travels with the reply.
    await act(b.message(original), "reply")
    context = b.page.get_by_test_id("composer-context")
    await expect(context).to_be_visible()
    await expect(b.page.get_by_test_id("composer-context-label")).to_have_text(
        f"Replying to {a.name}"
    )
    await expect(b.page.get_by_test_id("composer-context-excerpt")).to_have_text(original)
    await send(b.page, answer)
    await expect(context).to_be_hidden()
    for p, author in ((a, "You"), (b, a.name)):
        quote = p.message(answer).get_by_test_id("message-reply")
        await expect(quote).to_be_visible()
        await expect(quote.get_by_test_id("message-reply-author")).to_have_text(author)
        await expect(quote.get_by_test_id("message-reply-excerpt")).to_have_text(original)

    # Edit: only the author is offered it; the new text shows as edited on both sides.
    await b.message(original).hover()
    await expect(b.message(original).get_by_test_id("message-edit-button")).to_be_hidden()
    await act(a.message(original), "edit")
    box = a.page.get_by_test_id("composer-input")
    await expect(box).to_have_value(original)
    await expect(a.page.get_by_test_id("composer-context-label")).to_have_text(
        "Editing your message"
    )
    await box.fill(fixed)
    await a.page.get_by_test_id("send-button").click()
    await expect(a.page.get_by_test_id("composer-context")).to_be_hidden()
    await expect(box).to_have_value("")
    for p in (a, b):
        await expect(p.message(fixed).get_by_test_id("message-edited")).to_be_visible()
        await expect(p.message(original)).to_have_count(0)
        # The reply keeps the words it quoted.
        await expect(p.message(answer).get_by_test_id("message-reply-excerpt")).to_have_text(
            original
        )
    await expect(b.message(kept).get_by_test_id("message-edited")).to_be_hidden()

    # React: Ben adds a thumbs up, Ann adds hers by its chip, Ben takes his back.
    thumbs = "👍"
    await react(b.message(fixed), thumbs)
    chip_a, chip_b = reaction(a.message(fixed), thumbs), reaction(b.message(fixed), thumbs)
    await expect(chip_a.get_by_test_id("reaction-count")).to_have_text("1")
    await expect(chip_a).to_have_attribute("aria-pressed", "false")
    await expect(chip_b).to_have_attribute("aria-pressed", "true")
    await chip_a.click()
    await expect(chip_b.get_by_test_id("reaction-count")).to_have_text("2")
    await expect(chip_a).to_have_attribute("aria-pressed", "true")
    await chip_b.click()
    await expect(chip_a.get_by_test_id("reaction-count")).to_have_text("1")
    await expect(chip_b).to_have_attribute("aria-pressed", "false")
    await react(a.message(kept), "🎉")
    await expect(reaction(b.message(kept), "🎉").get_by_test_id("reaction-count")).to_have_text("1")

    # Delete: Ben (a member) may not delete Ann's message; Ann (the owner) may delete
    # his. Ann deletes her edited message: a tombstone on both sides, the reply's quote
    # emptied, its reactions gone.
    await b.message(fixed).hover()
    await expect(b.message(fixed).get_by_test_id("message-delete-button")).to_be_hidden()
    await a.message(answer).hover()
    await expect(a.message(answer).get_by_test_id("message-delete-button")).to_be_visible()
    item_a = a.page.locator(f'[data-testid="message"][data-id="{await message_id(a, fixed)}"]')
    item_b = b.page.locator(f'[data-testid="message"][data-id="{await message_id(a, fixed)}"]')
    await act(item_a, "delete")
    await expect(a.page.get_by_test_id("confirm-text")).to_contain_text("Delete your message")
    await a.page.get_by_test_id("confirm-ok").click()
    for item, p in ((item_a, a), (item_b, b)):
        await expect(item).to_have_attribute("data-deleted", "true")
        await expect(item.get_by_test_id("message-text")).to_have_text("This message was deleted.")
        await expect(item.get_by_test_id("reaction")).to_have_count(0)
        await expect(p.page.get_by_text(fixed, exact=True)).to_have_count(0)
        await expect(p.message(answer).get_by_test_id("message-reply-excerpt")).to_have_text(
            "Deleted message"
        )
    await item_b.hover()
    await expect(item_b.get_by_test_id("message-reply-button")).to_be_hidden()
    await b.message(kept).hover()
    ARTIFACTS.mkdir(exist_ok=True)
    await b.page.screenshot(path=str(ARTIFACTS / "state-changes-b.png"))

    # History says the same after a reload.
    await b.page.reload()
    await is_live(b.page, b.user)
    await b.open_room(name)
    await expect(item_b).to_have_attribute("data-deleted", "true")
    await expect(item_b.get_by_test_id("message-text")).to_have_text("This message was deleted.")
    await expect(b.message(answer).get_by_test_id("message-reply-excerpt")).to_have_text(
        "Deleted message"
    )
    await expect(reaction(b.message(kept), "🎉").get_by_test_id("reaction-count")).to_have_text("1")
    # Looking at the room read it: nothing of it counts as unread.
    await expect(b.room_item(name)).to_have_attribute("data-unread", "0")
    assert b.dialogs == [], b.dialogs


async def message_id(person: Person, text: str) -> str:
    value = await person.message(text).get_attribute("data-id")
    assert value, text
    return value


async def test_typing_shows_on_the_other_side_and_goes_away(
    pair: tuple[Person, Person], web_api: Api
) -> None:
    """Ann types in their direct room: Ben sees it, until it expires or her message arrives."""
    a, b = pair
    await direct_room(web_api, a, b)
    await a.open_room(b.name)
    await b.open_room(a.name)
    indicator = b.page.get_by_test_id("typing-indicator")
    await expect(indicator).to_be_hidden()

    # Typing and stopping: it shows, and goes away on its own (expiresIn, 6 s).
    await a.page.get_by_test_id("composer-input").press_sequentially("Let me th", delay=20)
    await expect(indicator).to_have_text(f"{a.name} is typing…")
    await expect(a.page.get_by_test_id("typing-indicator")).to_be_hidden()  # not one's own
    await expect(indicator).to_be_hidden(timeout=15_000)

    # Typing again, then sending: the message ends it, well before it would expire.
    text = f"Let me think {uuid.uuid4().hex[:8]}"
    await a.page.get_by_test_id("composer-input").fill("")
    await a.page.get_by_test_id("composer-input").press_sequentially("Let me", delay=20)
    await expect(indicator).to_have_text(f"{a.name} is typing…")
    started = time.monotonic()
    await send(a.page, text)
    await expect(b.message(text)).to_have_count(1)
    await expect(indicator).to_be_hidden(timeout=2_000)
    assert time.monotonic() - started < 5, "the indicator went away by expiring, not on the message"


async def test_unread_badge_clears_when_read_on_another_device(
    browser: Browser, pair: tuple[Person, Person], web_api: Api
) -> None:
    """Ann writes in a room Ben is not looking at: a badge (and a mention marker). Ben
    reads it on his second device: the divider shows there, and the badge goes away on
    the first."""
    a, b = pair
    tag = uuid.uuid4().hex[:8]
    name = f"Unread {tag}"
    room = await rest(
        web_api, "POST", "/rooms", a.user, {"name": name, "kind": "private", "members": [b.user.id]}
    )
    item = b.room_item(name)
    await expect(item).to_have_count(1)
    await b.open_room("General")
    first, mention = f"First news {tag}", f"@{b.name} have a look {tag}"
    await post(web_api, a.user, room["id"], first)
    badge = item.get_by_test_id("room-item-unread")
    await expect(badge).to_have_text("1")
    await expect(item.get_by_test_id("room-item-mention")).to_be_hidden()
    await post(web_api, a.user, room["id"], mention)
    await expect(badge).to_have_text("2")
    await expect(item.get_by_test_id("room-item-mention")).to_be_visible()
    await expect(b.page.get_by_test_id("room-title")).to_have_text("General")
    ARTIFACTS.mkdir(exist_ok=True)
    await b.page.screenshot(path=str(ARTIFACTS / "state-unread-b.png"))

    other = await second_device(browser, b)
    try:
        # The second device starts with the same count (GET /rooms), then reads the room.
        await expect(room_item(other, name).get_by_test_id("room-item-unread")).to_have_text("2")
        await open_room(other, name)
        divider = other.get_by_test_id("new-messages-divider")
        await expect(divider).to_have_count(1)
        # The divider sits right before the first unread message.
        follows = divider.locator("xpath=following-sibling::li[1]")
        await expect(follows.get_by_test_id("message-text")).to_have_text(first)
        await expect(room_item(other, name).get_by_test_id("room-item-unread")).to_be_hidden()
        # The first device is told: its badge and marker go away without a reload.
        await expect(badge).to_be_hidden()
        await expect(item.get_by_test_id("room-item-mention")).to_be_hidden()
        await expect(item).to_have_attribute("data-unread", "0")
    finally:
        await other.context.close()
    # And they stay away: the server has the marker.
    await b.page.reload()
    await is_live(b.page, b.user)
    await expect(b.room_item(name)).to_have_attribute("data-unread", "0")


async def test_direct_room_says_seen_once_read(pair: tuple[Person, Person], web_api: Api) -> None:
    """Ann writes to Ben while he looks elsewhere: no "Seen" until he opens the room."""
    a, b = pair
    await direct_room(web_api, a, b)
    await b.open_room("General")
    await a.open_room(b.name)
    text = f"Did you see this {uuid.uuid4().hex[:8]}"
    await send(a.page, text)
    mine = a.message(text)
    await expect(b.room_item(a.name).get_by_test_id("room-item-unread")).to_have_text("1")
    await expect(mine.get_by_test_id("message-seen")).to_be_hidden()

    await b.open_room(a.name)
    await expect(b.message(text)).to_have_count(1)
    await expect(mine.get_by_test_id("message-seen")).to_have_text("Seen")
    # Only under the newest message he read.
    await expect(a.page.get_by_test_id("message-seen").filter(has_text="Seen")).to_have_count(1)
    later = f"And this {uuid.uuid4().hex[:8]}"
    await send(a.page, later)
    await expect(b.message(later)).to_have_count(1)
    await expect(a.message(later).get_by_test_id("message-seen")).to_have_text("Seen")
    await expect(mine.get_by_test_id("message-seen")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    await a.page.screenshot(path=str(ARTIFACTS / "state-seen-a.png"))


async def test_presence_of_a_direct_rooms_other_person(
    browser: Browser, pair: tuple[Person, Person], routes: tuple[Route, Route], web_api: Api
) -> None:
    """Cleo (on the other replica) is online while her page is open, offline with a last
    seen time soon after it closes, and online again when she comes back."""
    a, _ = pair
    cleo = await new_person(browser, web_api, routes[1], "Cleo")
    try:
        room = await rest(web_api, "POST", "/rooms/direct", a.user, {"userId": cleo.user.id})
        item = a.room_item(cleo.name)
        await expect(item).to_have_attribute("data-room-id", room["id"])
        await expect(item).to_have_attribute("data-online", "true")
        await expect(item.get_by_test_id("room-item-presence")).to_have_attribute(
            "data-online", "true"
        )
        await a.open_room(cleo.name)
        header = a.page.get_by_test_id("room-presence")
        await expect(header).to_have_text("· Online")
        state = await cleo.context.storage_state()
    finally:
        await cleo.context.close()
    assert cleo.dialogs == [] and cleo.errors == [], (cleo.dialogs, cleo.errors)

    await expect(item).to_have_attribute("data-online", "false", timeout=OFFLINE_WITHIN_MS)
    await expect(header).to_have_text(re.compile(r"^· Last seen "))
    await a.page.get_by_test_id("members-button").click()
    member = (
        a.page.get_by_test_id("members-dialog")
        .get_by_test_id("member-item")
        .filter(has_text=cleo.name)
    )
    await expect(member.get_by_test_id("member-presence")).to_have_attribute("data-online", "false")
    await expect(member.get_by_test_id("member-last-seen")).to_have_text(re.compile("^Last seen "))
    await a.page.get_by_test_id("members-close").click()

    back = await browser.new_context(viewport=DESKTOP, storage_state=state)
    try:
        page = await back.new_page()
        await page.goto(cleo.route.url + "/")
        await is_live(page, cleo.user)
        await expect(item).to_have_attribute("data-online", "true")
        await expect(header).to_have_text("· Online")
    finally:
        await back.close()


async def test_phone_taps_a_message_for_its_actions(
    browser: Browser, pair: tuple[Person, Person], web_api: Api
) -> None:
    """Without hover, a tap on a message shows its actions; reacting works from there."""
    a, b = pair
    tag = uuid.uuid4().hex[:8]
    text = f"Tap me {tag}"
    room = await direct_room(web_api, a, b)
    await post(web_api, b.user, room["id"], text)
    phone = await second_device(
        browser, a, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    try:
        await phone.get_by_test_id("back-to-rooms").click()
        await room_item(phone, b.name).get_by_test_id("room-item-button").click()
        item = message(phone, text)
        await expect(item).to_be_visible()
        actions = item.get_by_test_id("message-actions")
        await expect(actions).to_be_hidden()
        await item.get_by_test_id("message-text").tap()
        await expect(actions).to_be_visible()
        await item.get_by_test_id("message-react-button").tap()
        await item.get_by_test_id("reaction-picker").locator('[data-emoji="❤️"]').tap()
        await expect(reaction(item, "❤️")).to_have_attribute("aria-pressed", "true")
        await b.open_room(a.name)
        await expect(reaction(b.message(text), "❤️").get_by_test_id("reaction-count")).to_have_text(
            "1"
        )
        overflow = await phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"page is {overflow}px wider than the phone screen"
        ARTIFACTS.mkdir(exist_ok=True)
        await phone.screenshot(path=str(ARTIFACTS / "state-phone.png"))
    finally:
        await phone.context.close()
