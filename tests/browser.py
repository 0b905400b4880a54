"""A real headless browser for the page tests: Debian's Chromium driven by playwright.

Missing Chromium is a failure, never a skip: the pages are only tested in a browser.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import pytest

CHROMIUM = os.environ.get("ALIFE_NAS_CHROMIUM", "/usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[object]:
    """One Chromium for a test module; fails (with how to install it) where there is none."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the report pages are tested in a real browser; "
                    "install it with: apt-get install chromium", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('playwright is missing: pip install -e ".[dev]"', pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A fresh page that records console errors and uncaught exceptions."""

    def __init__(self, browser: object) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})  # type: ignore[attr-defined]
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.close()
