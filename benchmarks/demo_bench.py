"""Wall time of `stq demo` (no flags, fresh output folder) per stage, against the 5-minute
target on this 2-core machine; then the time of a rerun, where every stage is reused.
With --readme README.md it writes the demo's own output (its first line and its closing
headline lines) into the README's transcript block, with the CPU it ran on; with --screenshot
PNG an image of the demo's report (headless Chromium), the README's picture.
Run: .venv/bin/python benchmarks/demo_bench.py [--keep DIR] [--readme README.md]
     [--screenshot docs/demo_report.png]."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from toolchain.fsutil import write_text

TARGET_S = 300.0
BEGIN, END = "<!-- demo transcript -->", "<!-- /demo transcript -->"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def transcript(stdout: str, out: Path) -> str:
    """The demo's first line, then its closing lines from "[demo] done" on (with the default
    output folder in place of this run's)."""
    lines = [ln.replace(str(out), "out/demo") for ln in stdout.splitlines()
             if ln.startswith("[demo")]
    done = next(i for i, ln in enumerate(lines) if ln.startswith("[demo] done"))
    return "\n".join([lines[0], "...", *lines[done:]])


def write_readme(readme: Path, text: str) -> None:
    src = readme.read_text()
    if BEGIN not in src or END not in src:
        sys.exit(f"{readme}: no {BEGIN} ... {END} block to replace")
    head, rest = src.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    block = (f"{BEGIN}\n```\n{text}\n```\n\n(written by `benchmarks/demo_bench.py --readme` "
             f"from a run on {os.cpu_count()} cores of an {cpu_name()}: the seeded training "
             "gives other weights on other CPU models, whose float reductions differ, so "
             "the accuracy and attack figures vary by machine; the host/device agreement "
             f"does not)\n{END}")
    write_text(readme, head + block + tail)


def screenshot(html: Path, png: Path, width: int = 1100, tallest: int = 8000) -> None:
    """The page as headless Chromium draws it, ``width`` pixels wide, cropped below the last
    non-white row."""
    from toolchain.errors import StqError
    from toolchain.reports import browser

    try:
        browser.screenshot(html, png, width, tallest, crop=True)
    except StqError as e:
        sys.exit(f"--screenshot: {e}")


def run(out: Path) -> tuple[float, dict, str]:
    stq = str(Path(sys.executable).with_name("stq"))
    t = time.perf_counter()
    proc = subprocess.run([stq, "demo", "-o", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"stq demo failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr}")
    return wall, json.loads((out / "report" / "report.json").read_text()), proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", help="output folder to keep (default: a temporary one)")
    ap.add_argument("--readme", type=Path, help="README to write the demo transcript into")
    ap.add_argument("--screenshot", type=Path, help="PNG to draw the demo report into")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp) / "demo"
        wall, s, stdout = run(out)
        if args.readme:
            write_readme(args.readme, transcript(stdout, out))
        if args.screenshot:
            screenshot(out / "report" / "report.html", args.screenshot)
        print(f"{'stage':<10} {'seconds':>8}")
        for stage, secs in s["timings"].items():
            print(f"{stage:<10} {secs:>8.1f}")
        print(f"{'total':<10} {wall:>8.1f}  (wall, incl. start-up; target {TARGET_S:.0f} s: "
              f"{wall / TARGET_S:.2f} of it)")
        rerun, _, _ = run(out)
        print(f"rerun with every stage reused: {rerun:.1f} s ({rerun / wall:.2f} of the first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
