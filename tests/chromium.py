"""Headless Chromium (Debian's `chromium`) for the report tests: the DOM as rendered, the
console errors, and a screenshot kept under test-artifacts/ (gitignored) to look at."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


@dataclass
class Rendered:
    dom: str
    console_errors: list[str]
    screenshot: Path


def render(page: Path, profile: Path, screenshot: str, height: int = 1600) -> Rendered:
    """Render ``page``; keep the screenshot as test-artifacts/<screenshot>."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (scripts/setup.sh installs it)")
    base = [chromium, *FLAGS, f"--user-data-dir={profile}"]
    uri = Path(page).resolve().as_uri()
    dom = subprocess.run(base + ["--dump-dom", uri], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    shot = ARTIFACTS / screenshot
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    proc = subprocess.run(base + [f"--screenshot={shot}", f"--window-size=1200,{height}", uri],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    return Rendered(dom.stdout, console, shot)
