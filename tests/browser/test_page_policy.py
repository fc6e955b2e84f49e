"""The chat page and /docs work under their Content-Security-Policy, in headless Chromium.

A policy that is too strict breaks the page quietly: Socket.IO falls back to long-polling
when the WebSocket is refused, a blocked stylesheet still leaves a page. So this test
looks at what the browser reports: no CSP violation in the console, and the realtime
connection upgraded to a WebSocket on the page's own origin.
"""

from __future__ import annotations

import asyncio
import uuid

from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.helpers.pages import NEEDS_CHROMIUM
from tests.helpers.rest import unique_email
from tests.helpers.stack import ChatStack

pytestmark = NEEDS_CHROMIUM


def csp_violations(page: Page) -> list[str]:
    """Console lines in which the browser reports a blocked resource or connection."""
    found: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            found.append(message.text)

    page.on("console", on_console)
    return found


async def test_the_chat_page_runs_and_uses_a_websocket_under_its_policy(
    browser: Browser, web_stack: ChatStack
) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        violations = csp_violations(page)
        host = web_stack.lb_url.split("://", 1)[1]
        own_websocket = asyncio.Event()
        page.on("websocket", lambda ws: f"{host}/socket.io/" in ws.url and own_websocket.set())
        await page.goto(web_stack.lb_url + "/")
        name, email, password = (
            f"Csp {uuid.uuid4().hex[:6]}",
            unique_email("csp"),
            "pw-" + uuid.uuid4().hex,
        )
        await page.get_by_label("Name").fill(name)
        await page.get_by_test_id("signup-email").fill(email)
        await page.get_by_test_id("signup-password").fill(password)
        await page.get_by_test_id("signup-submit").click()
        await expect(page.get_by_test_id("signin-email")).to_have_value(email)
        await page.get_by_test_id("signin-password").fill(password)
        await page.get_by_test_id("signin-submit").click()
        await expect(page.get_by_test_id("connection-status")).to_have_attribute(
            "data-state", "live"
        )
        text = f"under the policy {uuid.uuid4().hex[:8]}"
        await page.get_by_test_id("composer-input").fill(text)
        await page.get_by_test_id("send-button").click()
        await expect(
            page.get_by_test_id("message-text").get_by_text(text, exact=True)
        ).to_have_count(1)
        await asyncio.wait_for(own_websocket.wait(), 15)
        assert violations == []
    finally:
        await context.close()


async def test_docs_render_under_their_policy(browser: Browser, web_stack: ChatStack) -> None:
    """Swagger UI draws every operation of /openapi.json, loading nothing from elsewhere."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        violations = csp_violations(page)
        origins: set[str] = set()
        page.on("request", lambda request: origins.add(request.url.split("/")[2]))
        response = await page.goto(web_stack.lb_url + "/docs")
        assert response is not None and response.status == 200
        document = await (await page.request.get(web_stack.lb_url + "/openapi.json")).json()
        verbs = {"get", "put", "post", "delete", "patch", "head", "options"}
        operations = sum(len(verbs & set(item)) for item in document["paths"].values())
        await expect(page.locator(".opblock")).to_have_count(operations)
        post = page.locator('.opblock-post:has([data-path="/messages"])')
        await post.locator(".opblock-summary").click()
        await expect(post.get_by_text("nothing is published twice", exact=False)).to_be_visible()
        assert violations == []
        assert origins == {web_stack.lb_url.split("/")[2]}
    finally:
        await context.close()
