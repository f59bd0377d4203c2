"""Memory budget of the ResNet-8-sized ternary model (and the digits model if OUTDIR is given):
flash of the weights with 2-bit and base-3 packing against the int8 TFLite equivalent (1 byte
per weight plus an int32 bias per output channel, from the same graph), and the arena of the
optimal planner against its lower bound and the greedy largest-first planner (TFLite Micro).

    .venv/bin/python benchmarks/budget_bench.py [DIGITS_OUTDIR]
"""

from __future__ import annotations

import os
import sys
import time
import warnings

warnings.filterwarnings("ignore", category=UserWarning)  # Keras/QKeras serialization noise
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    from toolchain.budget.analysis import analyze, load_graph
    from toolchain.frontend.keras import convert_model
    from toolchain.training import zoo

    graphs = [("resnet8", convert_model(zoo.resnet8("stq"), name="resnet8"))]
    if len(sys.argv) > 1:
        graphs.append(("digits", load_graph(sys.argv[1])))
    print(f"{'model':<10} {'2-bit B':>9} {'base-3 B':>9} {'int8 B':>9} {'2bit/int8':>9} "
          f"{'arena B':>8} {'lower B':>8} {'greedy B':>8} {'optimal':>8} {'plan s':>7}")
    for name, g in graphs:
        t = time.perf_counter()
        b = analyze(g)
        dt = time.perf_counter() - t
        two, three, i8 = b.packing_bytes("2bit"), b.packing_bytes("base3"), b.int8_bytes
        print(f"{name:<10} {two:>9,} {three:>9,} {i8:>9,} {two / i8:>9.3f} {b.arena_bytes:>8,} "
              f"{b.arena_lower_bound:>8,} {b.arena_greedy:>8,} {str(b.arena_optimal):>8} "
              f"{dt:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
