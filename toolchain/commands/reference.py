"""Run the bit-exact NumPy reference of an artifact on integer inputs (.npy) and print or
save the integer outputs (and top-1)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from toolchain.errors import StqError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="model.stqa (or the directory holding it)")
    p.add_argument("--inputs", required=True, help=".npy of integer inputs, shape (N, *input)")
    p.add_argument("-o", "--output", help="write the outputs to this .npy")
    p.add_argument("--json", action="store_true", help="print outputs and top-1 as JSON")


def run(args: argparse.Namespace) -> int:
    from toolchain import reference
    from toolchain.fsutil import atomic_path

    g = reference.load_artifact_dir(args.artifact)
    try:
        xs = np.load(args.inputs, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise StqError(f"cannot read inputs {args.inputs}: {exc}") from None
    shape = g.tensors[g.input].shape
    if xs.shape == shape:
        xs = xs[None]
    ys = reference.predict(g, xs)
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, ys)
    if args.json or not args.output:
        print(json.dumps({"outputs": ys.tolist(), "top1": ys.argmax(1).tolist()}))
    return 0
