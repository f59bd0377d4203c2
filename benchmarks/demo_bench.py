"""Wall time of `stq demo` (no flags, fresh output folder) per stage, against the 5-minute
target on this 2-core machine; then the time of a rerun, where every stage is reused.
Run: .venv/bin/python benchmarks/demo_bench.py [--keep DIR]."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 300.0


def run(out: Path) -> tuple[float, dict]:
    stq = str(Path(sys.executable).with_name("stq"))
    t = time.perf_counter()
    proc = subprocess.run([stq, "demo", "-o", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"stq demo failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr}")
    return wall, json.loads((out / "report" / "report.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", help="output folder to keep (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp) / "demo"
        wall, s = run(out)
        print(f"{'stage':<10} {'seconds':>8}")
        for stage, secs in s["timings"].items():
            print(f"{stage:<10} {secs:>8.1f}")
        print(f"{'total':<10} {wall:>8.1f}  (wall, incl. start-up; target {TARGET_S:.0f} s: "
              f"{wall / TARGET_S:.2f} of it)")
        rerun, _ = run(out)
        print(f"rerun with every stage reused: {rerun:.1f} s ({rerun / wall:.2f} of the first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
