"""What every browser test module uses: the Chromium skip mark, viewports, page helpers.

The `browser` fixture itself is in tests/browser/conftest.py (one Chromium per module).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.helpers.browser import CHROMIUM, chromium_available
from tests.helpers.rest import Api, User

NEEDS_CHROMIUM = pytest.mark.skipif(
    not chromium_available(),
    reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CHAT_CHROMIUM)",
)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)


def watch(page: Page, dialogs: list[str], errors: list[str]) -> None:
    """Record (and dismiss) any dialog -- an executed XSS payload would open one."""

    async def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: errors.append(str(exc)))


async def send(page: Page, text: str) -> None:
    box = page.get_by_test_id("composer-input")
    await box.fill(text)
    await page.get_by_test_id("send-button").click()
    await expect(box).to_have_value("")


async def ids_in_page(page: Page) -> list[str]:
    return await page.get_by_test_id("message").evaluate_all("els => els.map(e => e.dataset.id)")


def assert_sorted_unique(ids: list[str]) -> None:
    assert len(ids) == len(set(ids)), f"duplicate messages rendered: {ids}"
    assert ids == sorted(ids, key=int), f"messages not in _id order: {ids}"


async def rest(api: Api, method: str, path: str, user: User, body: Any = None) -> Any:
    """A REST call that must succeed; its body."""
    reply = await api.request(method, path, token=user.token, json=body)
    assert 200 <= reply.status < 300, (method, path, reply.status, reply.text)
    return reply.body
