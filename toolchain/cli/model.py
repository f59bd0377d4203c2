"""Commands on the model: convert (QKeras -> artifact + C) and reference (the NumPy reference)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from toolchain.budget.analysis import (
    DEFAULT_BUDGET,
    advice,
    analyze_outdir,
    checks,
    parse_size,
)
from toolchain.cli.command import add_board_arguments, add_json_argument, collect
from toolchain.errors import StqError
from toolchain.ir.packing import SCHEMES

# --- stq convert -------------------------------------------------------------------------------

CONVERT_DOC = """\
Convert a trained QKeras model (.h5, .keras or SavedModel) or a full-integer int8 TFLite
model (.tflite) into the integer artifact (OUTDIR/model.stqa), its C sources (OUTDIR/c/) and a
summary (OUTDIR/convert.json)."""


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="QKeras model file (.h5 / .keras), "
                   "SavedModel directory, or int8 TFLite model (.tflite)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output directory (model.stqa, c/, convert.json)")
    p.add_argument("--packing", choices=SCHEMES, default="2bit",
                   help="ternary weight packing: 2bit (4 per byte) or base3 (5 per byte)")
    p.add_argument("--kernels", choices=("optimized", "reference"), default="optimized",
                   help="C kernels: optimized (DSP conv where available) or the reference "
                   "loops only")
    add_json_argument(p, "the summary")


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
    p.add_argument("artifact", metavar="ARTIFACT_OR_OUTDIR",
                   help="OUTDIR of `stq convert` or OUTDIR/model.stqa")
    p.add_argument("--inputs", required=True, help=".npy of integer inputs, shape (N, *input) "
                   "or one input of the input's shape")
    p.add_argument("-o", "--output", metavar="OUTPUTS.npy", help="write the integer outputs "
                   "(N, outputs) to this .npy (without it they are printed as JSON)")
    add_json_argument(p, "outputs and top-1 (also with -o)")


def run_reference(args: argparse.Namespace) -> int:
    from toolchain.fsutil import atomic_path
    from toolchain.reference import model as reference

    g = reference.load_artifact_dir(args.artifact)
    try:
        xs = np.load(args.inputs, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise StqError(f"cannot read inputs {args.inputs}: {exc}") from None
    shape = tuple(g.tensors[g.input].shape)
    if xs.shape == shape:
        xs = xs[None]
    if xs.ndim != len(shape) + 1 or tuple(xs.shape[1:]) != shape:
        raise StqError(f"inputs {args.inputs} have shape {xs.shape}; the model takes (N, "
                       f"{', '.join(map(str, shape))}) or one input of shape {shape}")
    if len(xs) == 0:
        raise StqError(f"inputs {args.inputs} hold no input (shape {xs.shape}); give N >= 1")
    ys = reference.predict(g, xs)
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, ys)
    if args.json or not args.output:
        print(json.dumps({"outputs": ys.tolist(), "top1": ys.argmax(1).tolist()}))
    return 0



# --- stq budget --------------------------------------------------------------------------------

BUDGET_DOC = """\
Memory budget of a converted model: per-layer flash (weights, requantization parameters,
kernel code) and RAM (activations, arena), the optimal arena plan next to its lower bound and
the greedy planner, checked against a board and a budget (default 410 KB; KB = 1000 B,
KiB = 1024 B). With --elf the prediction is verified against the linked firmware (model hash,
exact symbol sizes) and code, stack and runtime come from it. Exit code 1 when over."""


def add_budget_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, metavar="ARTIFACT_OR_OUTDIR",
                   help="OUTDIR of `stq convert`, OUTDIR/model.stqa, or an ensemble folder "
                   "(ensemble.json; its members share one arena and scratch)")
    add_board_arguments(p, required=False, extra=" (with --elf the default is the board the "
                        "firmware was built for)")
    p.add_argument("--budget", default=DEFAULT_BUDGET,
                   help="model footprint budget, e.g. 410KB (x1000), 400KiB (x1024), 0.5MB, "
                   "1024 (bytes); default %(default)s")
    p.add_argument("--elf", type=Path, default=None, help="firmware ELF from `stq build` to "
                   "verify against (its .map beside it is read too)")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="REPORT_DIR",
                   help="write budget.md, budget.json and budget.html there")
    p.add_argument("--json", action="store_true", help="print the JSON report")


def run_budget(args: argparse.Namespace) -> int:
    from toolchain.budget import report as budget_report
    from toolchain.budget.elf import ElfImage, reconcile
    from toolchain.firmware.boards import load_board

    limit = parse_size(args.budget)
    board = load_board(args.board) if args.board else None
    b = analyze_outdir(args.model)
    if args.elf is not None:
        elf = ElfImage(args.elf)
        if board is None:
            board = load_board(elf.board) if elf.board else None
        if board is None:
            raise StqError(f"--elf {args.elf} does not name its board; pass --board NAME")
        reconcile(b, elf, board, args.elf.with_suffix(".map"))
    results = checks(b, limit, board)
    ok = all(c.ok for c in results)
    notes = [] if ok else advice(b, results, board)
    name = board.name if board else None
    if args.output is not None:
        paths = budget_report.write_reports(args.output, b, results, notes, limit, name)
    if args.json:
        print(json.dumps(budget_report.to_json(b, results, notes, limit, name), indent=2))
    else:
        print(budget_report.text(b, results, notes), end="")
        if args.output is not None:
            print(f"reports: {', '.join(str(p) for p in paths.values())}")
    if not ok:
        over = "; ".join(c.line() for c in results if not c.ok)
        print(f"stq budget: over: {over}; {notes[0]}", file=sys.stderr)
        return 1
    return 0


CONVERT_HELP = "QKeras or int8 TFLite model -> integer artifact + C sources"
REFERENCE_HELP = "run the bit-exact NumPy reference on inputs"
BUDGET_HELP = "per-layer flash/RAM, arena plan, board and budget"
# --- stq ensemble ------------------------------------------------------------------------------

ENSEMBLE_DOC = """\
Link 2 to 8 converted models (`stq convert` OUTDIRs that take the same integer input) into one
ensemble folder: every member's C under its own symbol prefix, a wrapper that runs each member
on the same input and combines their outputs exactly (docs/semantics.md, "Ensemble"), the
member artifacts and ensemble.json. `stq build ENSEMBLE --board B` builds its firmware; `stq
attack ENSEMBLE` attacks it as one model (white-box through the members' averaged logits)."""
ENSEMBLE_HELP = "link converted models into one ensemble firmware"


def add_ensemble_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("members", nargs="+", metavar="OUTDIR", help="`stq convert` output folders")
    p.add_argument("-o", "--output", required=True, metavar="ENSEMBLE",
                   help="ensemble folder to write (ensemble.json, members/, c/)")
    p.add_argument("--names", help="comma-separated member names (default: the folder names)")
    add_json_argument(p, "the manifest")


def run_ensemble(args: argparse.Namespace) -> int:
    from toolchain.ensemble.generate import from_outdirs

    dirs = [Path(d) for d in args.members]
    for d in dirs:
        if not (d / "model.stqa").is_file():
            raise StqError(f"{d} is not a `stq convert` OUTDIR (no model.stqa)")
    names = [n.strip() for n in args.names.split(",")] if args.names else [d.name for d in dirs]
    if len(names) != len(dirs):
        raise StqError(f"--names gives {len(names)} names for {len(dirs)} members")
    man = from_outdirs(dirs, names, Path(args.output))
    if args.json:
        print(json.dumps(man, indent=2))
    else:
        for m in man["members"]:
            print(f"  {m['name']:<12} weight {m['weight']:>6}  hash {m['hash'][:16]}")
        print(f"ensemble {args.output} (hash {man['hash'][:16]}): `stq build {args.output} "
              "--board B`, `stq attack " + str(args.output) + "`")
    return 0


COMMANDS = collect(globals(), "convert", "reference", "budget", "ensemble")
