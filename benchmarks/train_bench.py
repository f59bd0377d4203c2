"""Training cost: seconds per epoch of each zoo model on digits-sized (8x8x1) and CIFAR-sized
(32x32x3) inputs, with and without Jacobian regularization, and the JR/plain ratio.

Synthetic data (random images, 10 classes), the same number of examples for every model;
the first epoch (graph tracing) is excluded. Run: .venv/bin/python benchmarks/train_bench.py
[--examples N] [--json PATH]."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=UserWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from toolchain.training import zoo  # noqa: E402
from toolchain.training.datasets import Dataset  # noqa: E402
from toolchain.training.train import TrainConfig, read_log, train  # noqa: E402

SHAPES = {"digits-sized": (8, 8, 1), "cifar-sized": (32, 32, 3)}


def epoch_seconds(model: str, shape: tuple[int, ...], variant: str, n: int) -> float:
    rng = np.random.default_rng(0)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, 10, n)
    ds = Dataset("synthetic", x, y, x[:64], y[:64], 10)
    with tempfile.TemporaryDirectory() as tmp:
        r = train(TrainConfig(model=model, variant=variant, epochs=3, batch_size=32), tmp,
                  progress=False, dataset=ds)
        t = [float(row["seconds"]) for row in read_log(Path(r.log_path))]
    return (t[2] - t[0]) / 2.0  # epochs 2 and 3: tracing excluded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=512)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    rows = []
    print(f"{'model':<13} {'input':<13} {'stq s/epoch':>12} {'stq-jr s/epoch':>15} {'ratio':>6}")
    for model in sorted(zoo.MODELS):
        for label, shape in SHAPES.items():
            plain = epoch_seconds(model, shape, "stq", args.examples)
            jr = epoch_seconds(model, shape, "stq-jr", args.examples)
            rows.append({"model": model, "input": label, "stq": plain, "stq_jr": jr,
                         "ratio": jr / plain})
            print(f"{model:<13} {label:<13} {plain:>12.2f} {jr:>15.2f} {jr / plain:>6.2f}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
