"""Oracle throughput for black-box attacks, and the wall time of a full digits evaluation.

Queries per second (one query = one input) of every oracle of ``toolchain.oracles`` on digits
test images: the NumPy reference (batched, at --batch and at one input per call as
HopSkipJump's binary search and Square query it; as a ratio against the baseline of one
``reference.run`` per input, measured in the same process), the host-compiled C (in-process,
at --batch and at one input per call), the virtual board
(the firmware's protocol code on a pty) and QEMU netduinoplus2 (firmware built with
``stq build``; the UART model is the bottleneck). With --full it also times the default
evaluation of the model (``stq attack`` defaults at ``--budget``, 20 images) against the
virtual board.

    .venv/bin/python benchmarks/attack_bench.py OUTDIR [--model M.h5] [--queries 200]
        [--qemu-queries 40] [--full] [--budget quick|standard|thorough] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolchain.reference import model as reference
from toolchain.robustness import oracles
from toolchain.training import datasets


def rate(oracle: oracles.Oracle, x: np.ndarray, batch: int) -> float:
    oracle(x[:1])  # warm up (compiles, first frames)
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        oracle(x[i:i + batch])
    return len(x) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path, help="OUTDIR of `stq convert`")
    ap.add_argument("--model", type=Path, help="the .h5 (for --full)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--qemu-queries", type=int, default=40)
    ap.add_argument("--batch", type=int, default=25, help="inputs per oracle call")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--full", action="store_true", help="time the default attack evaluation")
    ap.add_argument("--budget", default="quick", help="attack budget of --full")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    g = reference.load_artifact_dir(args.outdir)
    pool = datasets.digits().x_test
    x = np.resize(pool, (args.queries, *pool.shape[1:]))
    out: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="stq-attack-bench-"))
    ro = oracles.ReferenceOracle(g)
    out["reference_qps"] = rate(ro, x, args.batch)
    out["reference_qps_batch1"] = rate(ro, x, 1)

    def per_input(xs: np.ndarray) -> np.ndarray:  # the baseline: one input at a time
        return np.stack([reference.run(g, v)[g.output].reshape(-1) for v in ro.quantize(xs)])

    base = rate(per_input, x, args.batch)  # type: ignore[arg-type]
    out["reference_per_input_qps"] = base
    out["reference_batched_vs_per_input"] = out["reference_qps"] / base
    hc = oracles.HostCOracle(g, args.outdir / "c", work)
    out["host_c_qps"] = rate(hc, x, args.batch)
    out["host_c_qps_batch1"] = rate(hc, x, 1)
    out["host_c_batch1_vs_reference_batch1"] = (out["host_c_qps_batch1"]
                                                / out["reference_qps_batch1"])
    with oracles.open_oracle(g, args.outdir, board="virtual", workdir=work) as vb:
        out["virtual_board_qps"] = rate(vb, x, args.batch)
    if not args.no_qemu:
        with oracles.open_oracle(g, args.outdir, board="netduinoplus2", workdir=work) as qb:
            out["qemu_qps"] = rate(qb, x[:args.qemu_queries], args.batch)
    if args.full:
        from toolchain.robustness import evaluate as attacks_eval
        from toolchain.robustness.registry import for_dataset

        cfg = for_dataset("digits", budget=args.budget)
        t0 = time.perf_counter()
        res = attacks_eval.evaluate(args.model, args.outdir, cfg, "digits", work / "full",
                                    board="virtual", log=lambda s: None)
        out["full_eval_seconds"] = time.perf_counter() - t0
        out["full_eval_queries"] = sum(r["queries"] or 0 for r in res["rows"]
                                       if r["bounded"] or r["eps"] is None)
    for k, v in out.items():
        print(f"{k:>22}: {v:,.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
