"""Headless Chromium (Debian's `chromium`): an HTML report's DOM as rendered, its console
errors, and screenshots of it. Used by the report tests (tests/chromium.py) and by
`benchmarks/demo_bench.py --screenshot` (the README's picture of the demo report)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from toolchain.errors import StqError
from toolchain.fsutil import atomic_path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
TIMEOUT_S = 120


def find() -> str | None:
    """The first Chromium on PATH, or None."""
    return next((p for b in BROWSERS if (p := shutil.which(b))), None)


def _base(profile: Path) -> list[str]:
    browser = find()
    if browser is None:
        raise StqError("no Chromium on PATH (apt-get install chromium; scripts/setup.sh does)")
    return [browser, *FLAGS, f"--user-data-dir={profile}"]


def dump_dom(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` after its scripts ran, and the console errors it logged."""
    proc = subprocess.run(_base(profile) + ["--dump-dom", Path(page).resolve().as_uri()],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise StqError(f"Chromium could not render {page}: {proc.stderr[-2000:]}")
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    return proc.stdout, console


def screenshot(page: Path, png: Path, width: int, height: int, profile: Path | None = None,
               crop: bool = False) -> Path:
    """``page`` drawn in a ``width`` x ``height`` window into ``png`` (written atomically);
    with ``crop`` cut below the last non-white row (Chromium's command line cannot size the
    window to the page)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "page.png"
        proc = subprocess.run(_base(profile or Path(tmp) / "profile")
                              + [f"--screenshot={raw}", f"--window-size={width},{height}",
                                 Path(page).resolve().as_uri()],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        if proc.returncode != 0 or not raw.is_file():
            raise StqError(f"Chromium could not draw {page}: {proc.stderr[-2000:]}")
        with atomic_path(png) as tmp_png:
            if crop:
                import numpy as np
                from PIL import Image

                im = Image.open(raw).convert("RGB")
                ink = np.flatnonzero((np.asarray(im.convert("L")) < 250).any(axis=1))
                bottom = min(im.height, int(ink.max()) + 20) if len(ink) else im.height
                im.crop((0, 0, width, bottom)).save(tmp_png, format="PNG", optimize=True)
            else:
                shutil.copyfile(raw, tmp_png)
    return png
