"""Commands on the model: convert (QKeras -> artifact + C) and reference (the NumPy reference)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from toolchain.cli.command import Command
from toolchain.errors import StqError
from toolchain.ir.packing import SCHEMES

# --- stq convert -------------------------------------------------------------------------------

CONVERT_DOC = """\
Convert a trained QKeras model (.h5, .keras or SavedModel) into the integer artifact
(OUTDIR/model.stqa), its C sources (OUTDIR/c/) and a summary (OUTDIR/convert.json)."""


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QKeras model file (.h5 / .keras) or SavedModel directory")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    p.add_argument("--packing", choices=SCHEMES, default="2bit",
                   help="ternary weight packing: 2bit (4 per byte) or base3 (5 per byte)")
    p.add_argument("--kernels", choices=("optimized", "reference"), default="optimized",
                   help="C kernels: optimized (DSP conv where available, default) or the "
                   "reference loops only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _kernel_summary(s: dict) -> str:
    """"reference kernels", or how many layers got an optimized kernel (never claiming
    "optimized kernels" while some layer falls back to its reference loop)."""
    n_opt = sum(layer["optimized"] for layer in s["layers"])
    if s["kernels"] == "reference" or n_opt == 0:
        return "reference kernels"
    rest = len(s["layers"]) - n_opt
    return (f"optimized kernels on {n_opt} of {len(s['layers'])} layers"
            + (f", reference on {rest}" if rest else ""))


def run_convert(args: argparse.Namespace) -> int:
    from toolchain.pipeline.convert import convert

    s = convert(args.model, args.output, args.packing, args.kernels)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"model {s['model']}: {len(s['layers'])} layers, {s['macs']:,} MACs, "
          f"weights+params {s['weight_bytes']:,} B ({s['packing']}), arena {s['arena_bytes']:,} B, "
          f"{_kernel_summary(s)} (scratch {s['scratch_bytes']:,} B)")
    for layer in s["layers"]:
        shape = "x".join(map(str, layer["output"]))
        print(f"  {layer['name']:<28} {layer['op']:<17} {layer['weights'] or '-':<8} "
              f"-> {shape:<10} {layer['dtype']:<6} {layer['flash_bytes']:>8,} B  "
              f"{'optimized' if layer['optimized'] else 'reference'}")
    print(f"artifact {s['artifact']}  (hash {s['hash'][:16]})")
    print(f"C sources {s['c_dir']}/")
    return 0


# --- stq reference -----------------------------------------------------------------------------

REFERENCE_DOC = """\
Run the bit-exact NumPy reference of an artifact on integer inputs (.npy) and print or
save the integer outputs (and top-1)."""


def add_reference_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="model.stqa (or the directory holding it)")
    p.add_argument("--inputs", required=True, help=".npy of integer inputs, shape (N, *input)")
    p.add_argument("-o", "--output", help="write the outputs to this .npy")
    p.add_argument("--json", action="store_true", help="print outputs and top-1 as JSON")


def run_reference(args: argparse.Namespace) -> int:
    from toolchain.fsutil import atomic_path
    from toolchain.reference import model as reference

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


COMMANDS = [
    Command("convert", "QKeras model -> integer artifact + C sources",
            CONVERT_DOC, add_convert_arguments, run_convert),
    Command("reference", "run the bit-exact NumPy reference on inputs",
            REFERENCE_DOC, add_reference_arguments, run_reference),
]
