"""Board-farm throughput: framed inferences per second with 1, 2 and 4 QEMU netduinoplus2
boards on this machine, as ratios of one board measured in the same run.

Boards are started and handshaken first (not timed); then the same N inputs (validation
blocks of --block inputs, toolchain.farm.validate.run_block) are spread over the boards.

    .venv/bin/python benchmarks/farm_bench.py OUTDIR [--inputs 160] [--boards 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain.farm import scheduler  # noqa: E402
from toolchain.farm.pool import FarmSpec  # noqa: E402
from toolchain.farm.validate import make_blocks, run_block  # noqa: E402
from toolchain.reference import model as reference  # noqa: E402
from toolchain.validate.run import Inputs  # noqa: E402


def measure(outdir: Path, work: Path, boards: int, inp: Inputs, expected: np.ndarray,
            block: int, elf: Path | None) -> dict:
    farm = FarmSpec("netduinoplus2", outdir, work, qemu=boards, elf=elf, block=block)
    items = make_blocks(inp, expected, 0, block)
    t_open = time.monotonic()
    with scheduler.LocalFarm(farm) as pool:
        pool.map(items[:boards], run_block, lambda *_: None)  # every board up and warm
        opened = time.monotonic() - t_open
        t0 = time.monotonic()
        pool.map(items, run_block, lambda *_: None)
        wall = time.monotonic() - t0
    return {"boards": boards, "inferences": len(inp.xq), "seconds": round(wall, 3),
            "per_s": round(len(inp.xq) / wall, 2), "startup_s": round(opened, 2),
            "failed": sum(1 for s in pool.stats if s.failed), "elf": str(farm.elf)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path, help="`stq convert` OUTDIR (e.g. of the digits model)")
    ap.add_argument("--inputs", type=int, default=160)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--boards", default="1,2,4")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    g = reference.load_artifact_dir(args.outdir)
    from toolchain.training import datasets

    x = datasets.load("digits").x_test[: args.inputs]
    inp = Inputs(reference.quantize_input(g, x), x, None, "digits")
    expected = reference.predict(g, inp.xq).astype(np.int8)
    rows, elf = [], None
    with tempfile.TemporaryDirectory(prefix="farm-bench-") as tmp:
        for n in (int(v) for v in args.boards.split(",")):
            r = measure(args.outdir, Path(tmp), n, inp, expected, args.block, elf)
            elf = Path(r.pop("elf"))
            rows.append(r)
    base = rows[0]["per_s"]
    print(f"board farm on {os.cpu_count()} cores, {args.inputs} digits inferences per run")
    print("| boards | inferences/s | ratio vs 1 board | startup s | failed |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        r["ratio"] = round(r["per_s"] / base, 2)
        print(f"| {r['boards']} | {r['per_s']:.1f} | {r['ratio']:.2f}x | {r['startup_s']:.1f} | "
              f"{r['failed']} |")
    if args.json:
        args.json.write_text(json.dumps({"cores": os.cpu_count(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
