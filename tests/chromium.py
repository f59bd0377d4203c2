"""Headless Chromium for the report tests (toolchain/reports/browser.py): the DOM as rendered,
the console errors, and a screenshot kept under test-artifacts/ (gitignored) to look at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from toolchain.errors import StqError
from toolchain.reports import browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@dataclass
class Rendered:
    dom: str
    console_errors: list[str]
    screenshot: Path


def render(page: Path, profile: Path, screenshot: str, height: int = 1600) -> Rendered:
    """Render ``page``; keep the screenshot as test-artifacts/<screenshot>."""
    if browser.find() is None:
        pytest.fail("chromium is not installed (scripts/setup.sh installs it)")
    try:
        dom, console = browser.dump_dom(page, profile)
        shot = browser.screenshot(page, ARTIFACTS / screenshot, 1200, height, profile)
    except StqError as e:
        pytest.fail(str(e))
    assert shot.stat().st_size > 10_000, f"{shot}: an empty screenshot"
    return Rendered(dom, console, shot)
