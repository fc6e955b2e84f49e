"""The chat page served at `/`, driven in headless Chromium through the load balancer.

Two browser contexts (A and B) reach DIFFERENT gateway replicas (see conftest.py), sign
up and sign in through the UI and chat in real time. Screenshots land in
test-artifacts/: chat-a.png, chat-b.png, chat-phone.png, chat-dark.png, chat-auth.png.

Skipped only when Chromium is missing (set CHAT_CHROMIUM to use another binary).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.helpers.browser import Route
from tests.helpers.pages import (
    DESKTOP,
    NEEDS_CHROMIUM,
    PHONE,
    assert_sorted_unique,
    ids_in_page,
    send,
    watch,
)
from tests.helpers.rest import Api, User, unique_email
from tests.helpers.stack import ARTIFACTS

pytestmark = NEEDS_CHROMIUM


@dataclass
class Person:
    """One browser context signed in through the UI."""

    name: str
    email: str
    password: str
    context: BrowserContext
    page: Page
    route: Route
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def message(self, text: str):  # type: ignore[no-untyped-def]
        """The list item of the (unique) message whose text is exactly `text`."""
        return self.page.get_by_test_id("message").filter(
            has=self.page.get_by_test_id("message-text").get_by_text(text, exact=True)
        )


async def open_page(browser: Browser, url: str, **context_options) -> tuple[BrowserContext, Page]:  # type: ignore[no-untyped-def]
    context = await browser.new_context(**{"viewport": DESKTOP, **context_options})
    page = await context.new_page()
    await page.goto(url + "/")
    return context, page


async def sign_up_and_in(page: Page, name: str, email: str, password: str) -> None:
    await expect(page.get_by_test_id("auth-view")).to_be_visible()
    await page.get_by_label("Name").fill(name)
    await page.get_by_test_id("signup-email").fill(email)
    await page.get_by_test_id("signup-password").fill(password)
    await page.get_by_test_id("signup-submit").click()
    # Signed up: the sign-in form is pre-filled with the email.
    await expect(page.get_by_test_id("signin-notice")).to_contain_text("Account created")
    await expect(page.get_by_test_id("signin-email")).to_have_value(email)
    await page.get_by_test_id("signin-password").fill(password)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("chat-view")).to_be_visible()
    await expect(page.get_by_test_id("current-user")).to_have_text(name)


@pytest.fixture(scope="module")
async def pair(
    browser: Browser, routes: tuple[Route, Route]
) -> AsyncIterator[tuple[Person, Person]]:
    """A and B, each signed up and in through the UI, on different gateway replicas."""
    route_a, route_b = routes
    assert route_a.replica != route_b.replica
    people: list[Person] = []
    try:
        for label, route in (("A", route_a), ("B", route_b)):
            tag = uuid.uuid4().hex[:6]
            context, page = await open_page(browser, route.url)
            person = Person(
                name=f"Alice {tag}" if label == "A" else f"Bob {tag}",
                email=unique_email(f"web{label.lower()}"),
                password=f"pw-{uuid.uuid4().hex}",
                context=context,
                page=page,
                route=route,
            )
            watch(page, person.dialogs, person.errors)
            people.append(person)
        a, b = people
        ARTIFACTS.mkdir(exist_ok=True)
        await a.page.screenshot(path=str(ARTIFACTS / "chat-auth.png"))
        for p in people:
            await sign_up_and_in(p.page, p.name, p.email, p.password)
        yield a, b
    finally:
        for p in people:
            await p.context.close()


# ---- tests -------------------------------------------------------------------------------------


async def test_page_served_at_root(web_api: Api) -> None:
    """`/` is the page; its script, stylesheet and the Socket.IO client are served too."""
    for path, kind in [
        ("/", "text/html"),
        ("/static/app.js", "javascript"),
        ("/static/style.css", "text/css"),
        ("/static/vendor/socket.io.min.js", "javascript"),
    ]:
        reply = await web_api.request("GET", path)
        assert reply.status == 200, (path, reply.status, reply.text[:200])
        assert kind in reply.headers.get("Content-Type", ""), (path, reply.headers)


async def test_both_live_on_different_replicas(pair: tuple[Person, Person]) -> None:
    a, b = pair
    assert a.route.replica != b.route.replica
    for p in pair:
        status = p.page.get_by_test_id("connection-status")
        await expect(status).to_have_attribute("data-state", "live")
        await expect(status).to_contain_text("Live")


async def test_messages_both_ways_in_real_time(pair: tuple[Person, Person]) -> None:
    a, b = pair
    tag = uuid.uuid4().hex[:8]
    hello, reply = f"Hello from A {tag}", f"Hi A, B here {tag}"

    await send(a.page, hello)
    for viewer, own in ((a, "true"), (b, "false")):
        item = viewer.message(hello)
        await expect(item).to_have_count(1)
        await expect(item).to_have_attribute("data-own", own)
        await expect(item).to_have_class(re.compile(r"\bown\b" if own == "true" else r"\bother\b"))
        await expect(item.get_by_test_id("message-author")).to_contain_text(a.name)
        await expect(item.get_by_test_id("message-time")).to_have_text(re.compile(r"\d"))

    await send(b.page, reply)
    for viewer, own in ((b, "true"), (a, "false")):
        item = viewer.message(reply)
        await expect(item).to_have_count(1)
        await expect(item).to_have_attribute("data-own", own)
        await expect(item.get_by_test_id("message-author")).to_contain_text(b.name)

    # Own messages on the right, others' on the left.
    for viewer, own_text, other_text in ((a, hello, reply), (b, reply, hello)):
        own_box = await viewer.message(own_text).get_by_test_id("message-text").bounding_box()
        other_box = await viewer.message(other_text).get_by_test_id("message-text").bounding_box()
        assert own_box and other_box
        width = DESKTOP["width"]
        assert own_box["x"] + own_box["width"] > width / 2 > other_box["x"], (own_box, other_box)
        assert own_box["x"] > other_box["x"] + other_box["width"], (own_box, other_box)

    for p in pair:
        assert_sorted_unique(await ids_in_page(p.page))


async def test_xss_payload_renders_as_text(pair: tuple[Person, Person]) -> None:
    a, _ = pair
    tag = uuid.uuid4().hex[:8]
    payload = (
        f"<img src=x onerror=\"alert('xss-{tag}')\"><script>alert(1)</script>"
        f"<b>bold</b> &amp; a < b {tag}"
    )
    await send(a.page, payload)
    shown = f"bold & a < b {tag}"  # the text of the (server-sanitized) HTML, tags not rendered
    for p in pair:
        item = p.message(shown)
        await expect(item).to_have_count(1)
        # Rendered as text: no element at all inside the message body.
        assert await item.get_by_test_id("message-text").locator("*").count() == 0
        assert (
            await p.page.evaluate(
                "document.querySelectorAll('#messages img, #messages script, #messages b').length"
            )
            == 0
        )
        assert p.dialogs == [], p.dialogs
        assert p.errors == [], p.errors


async def test_client_renders_even_unsanitized_html_as_text(
    browser: Browser, routes: tuple[Route, Route]
) -> None:
    """Defense in depth: a hostile message that the server did not sanitize runs nothing."""
    context, page = await open_page(browser, routes[0].url)
    dialogs: list[str] = []
    errors: list[str] = []
    watch(page, dialogs, errors)
    try:
        hostile = {
            "_id": "7",
            "id": str(uuid.uuid4()),
            "owner": "999999",
            "userName": '<img src=x onerror="alert(1)">Mallory',
            "text": '<img src=x onerror="alert(2)"><script>alert(3)</script>'
            '<a href="javascript:alert(4)">click</a><svg onload="alert(5)"></svg>ok',
            "createdAt": "2024-01-01T12:00:00Z",
        }

        async def fake_history(route) -> None:  # type: ignore[no-untyped-def]
            await route.fulfill(
                status=200, content_type="application/json", body=json.dumps([hostile])
            )

        await page.route(re.compile(r"/messages\?limit=50$"), fake_history)
        # The fake token would be refused at the handshake (and sign the page out).
        await page.route(re.compile(r"/socket\.io/"), lambda route: route.abort())
        await page.evaluate(
            "localStorage.setItem('chat.session', "
            "JSON.stringify({token: 'x.y.z', userId: '1', name: 'Tester'}))"
        )
        await page.reload()
        item = page.get_by_test_id("message")
        await expect(item).to_have_count(1)
        await expect(item.get_by_test_id("message-author")).to_have_text(
            '<img src=x onerror="alert(1)">Mallory'
        )
        await expect(item.get_by_test_id("message-text")).to_have_text("clickok")
        assert (
            await page.evaluate(
                "document.querySelectorAll('#messages img, #messages script, #messages svg, "
                "#messages a').length"
            )
            == 0
        )
        assert dialogs == [], dialogs
    finally:
        await context.close()


async def test_api_errors_shown_inline(
    browser: Browser, routes: tuple[Route, Route], pair: tuple[Person, Person]
) -> None:
    a, _ = pair
    context, page = await open_page(browser, routes[1].url)
    try:
        # Unknown email / wrong password: the server's 401 message, inline.
        await page.get_by_test_id("signin-email").fill(a.email)
        await page.get_by_test_id("signin-password").fill("wrong-password")
        await page.get_by_test_id("signin-submit").click()
        error = page.get_by_test_id("signin-error")
        await expect(error).to_be_visible()
        await expect(error).not_to_be_empty()
        await expect(page.get_by_test_id("chat-view")).to_be_hidden()
        # Email taken: the server's 409 message.
        await page.get_by_label("Name").fill("Someone Else")
        await page.get_by_test_id("signup-email").fill(a.email)
        await page.get_by_test_id("signup-password").fill("long-enough-pw")
        await page.get_by_test_id("signup-submit").click()
        await expect(page.get_by_test_id("signup-error")).to_be_visible()
        await expect(page.get_by_test_id("signup-error")).not_to_be_empty()
        # Checked before asking the server: a short password.
        await page.get_by_test_id("signup-email").fill(unique_email("short"))
        await page.get_by_test_id("signup-password").fill("short")
        await page.get_by_test_id("signup-submit").click()
        await expect(page.get_by_test_id("signup-error")).to_contain_text("8 characters")
    finally:
        await context.close()


async def test_send_retries_with_the_same_id(pair: tuple[Person, Person]) -> None:
    """A POST lost to the network is retried with the same client id: stored once."""
    a, b = pair
    text = f"Retried send {uuid.uuid4().hex[:8]}"
    bodies: list[dict] = []

    async def flaky(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.method != "POST":
            await route.fallback()
            return
        bodies.append(json.loads(route.request.post_data or "{}"))
        if len(bodies) == 1:
            await route.abort("connectionreset")
        else:
            await route.fallback()

    await a.page.route(re.compile(r"/messages$"), flaky)
    try:
        await send(a.page, text)
    finally:
        await a.page.unroute(re.compile(r"/messages$"), flaky)
    assert len(bodies) == 2, bodies
    assert bodies[0]["id"] == bodies[1]["id"] and bodies[0]["text"] == text, bodies
    await expect(a.message(text)).to_have_count(1)
    await expect(b.message(text)).to_have_count(1)
    await expect(a.page.get_by_test_id("send-error")).to_be_hidden()


async def test_reconnect_recovers_missed_messages(pair: tuple[Person, Person]) -> None:
    """A's network path drops; B keeps chatting; A reconnects and gets what it missed, once."""
    a, b = pair
    tag = uuid.uuid4().hex[:8]
    status = a.page.get_by_test_id("connection-status")
    await expect(status).to_have_attribute("data-state", "live")
    a.route.forwarder.pause()
    try:
        await expect(status).to_have_attribute("data-state", re.compile("reconnecting|offline"))
        missed = [f"While A was away {i} {tag}" for i in range(3)]
        for text in missed:
            await send(b.page, text)
    finally:
        a.route.forwarder.resume()
    await expect(status).to_have_attribute("data-state", "live", timeout=30_000)
    for text in missed:
        await expect(a.message(text)).to_have_count(1)
    # Live again afterwards, and nothing duplicated.
    after = f"After reconnect {tag}"
    await send(b.page, after)
    await expect(a.message(after)).to_have_count(1)
    assert_sorted_unique(await ids_in_page(a.page))


async def test_screenshots_desktop_phone_dark_and_sign_out(
    browser: Browser, pair: tuple[Person, Person]
) -> None:
    a, b = pair
    ARTIFACTS.mkdir(exist_ok=True)
    for p in pair:  # a scroll position at the newest message makes a useful picture
        await p.page.get_by_test_id("message-scroller").evaluate(
            "el => el.scrollTop = el.scrollHeight"
        )
    await a.page.screenshot(path=str(ARTIFACTS / "chat-a.png"))
    await b.page.screenshot(path=str(ARTIFACTS / "chat-b.png"))

    # The session survives a new tab: the same localStorage, signed in at once.
    state = await a.context.storage_state()
    phone = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, storage_state=state
    )
    dark = await browser.new_context(viewport=DESKTOP, color_scheme="dark", storage_state=state)
    try:
        for context, shot in ((phone, "chat-phone.png"), (dark, "chat-dark.png")):
            page = await context.new_page()
            await page.goto(a.route.url + "/")
            await expect(page.get_by_test_id("current-user")).to_have_text(a.name)
            await expect(page.get_by_test_id("connection-status")).to_have_attribute(
                "data-state", "live"
            )
            await expect(page.get_by_test_id("message").last).to_be_visible()
            if shot == "chat-phone.png":  # nothing overflows sideways on a phone
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth"
                )
                assert overflow <= 0, f"page is {overflow}px wider than the phone screen"
            await page.screenshot(path=str(ARTIFACTS / shot))

        # Sign out (in the dark tab): back to the forms, token gone, socket closed.
        page = dark.pages[0]
        await page.get_by_test_id("signout-button").click()
        await expect(page.get_by_test_id("auth-view")).to_be_visible()
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "offline"
        )
        assert await page.evaluate("localStorage.getItem('chat.session')") is None
        await expect(page.get_by_test_id("message")).to_have_count(0)
    finally:
        await phone.close()
        await dark.close()
    assert a.dialogs == [] and b.dialogs == []
    assert a.errors == [] and b.errors == [], (a.errors, b.errors)


async def test_load_older(browser: Browser, routes: tuple[Route, Route], web_api: Api) -> None:
    """More than one page of history: the newest 50 first, then "Load older"."""
    tag = uuid.uuid4().hex[:8]
    email, password = unique_email("seed"), f"pw-{uuid.uuid4().hex}"
    assert (await web_api.signup(f"Seeder {tag}", email, password)).status == 201
    signin = await web_api.signin(email, password)
    assert signin.status == 200, signin.text
    seeder = User(
        str(signin.body["userId"]), signin.body["name"], email, password, signin.body["token"]
    )
    texts = [f"seed {i:02d} {tag}" for i in range(60)]
    for text in texts:
        await web_api.send(seeder, text)
    total = len(await web_api.history(seeder, limit=500))

    context, page = await open_page(browser, routes[0].url)
    try:
        reader = Person(
            "Reader", unique_email("reader"), f"pw-{uuid.uuid4().hex}", context, page, routes[0]
        )
        await sign_up_and_in(page, f"Reader {tag}", reader.email, reader.password)
        items = page.get_by_test_id("message")
        await expect(items).to_have_count(50)
        await expect(reader.message(texts[-1])).to_have_count(1)
        await expect(reader.message(texts[9])).to_have_count(0)  # 60 seeded, 50 shown
        older = page.get_by_test_id("load-older")
        await expect(older).to_be_visible()
        await older.click()
        await expect(reader.message(texts[0])).to_have_count(1)
        await expect(items).to_have_count(min(total, 100))
        if total <= 100:
            await expect(older).to_be_hidden()
            await expect(page.get_by_test_id("history-start")).to_be_visible()
        ids = await ids_in_page(page)
        assert_sorted_unique(ids)
        shown = await page.get_by_test_id("message-text").all_inner_texts()
        seeded = [t for t in shown if t.endswith(tag) and t.startswith("seed ")]
        assert seeded == texts, "seeded messages out of order"
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "live"
        )
    finally:
        await context.close()
