"""`stq validate`: inputs on a device, every output compared with the host."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolchain.cli.command import Command
from toolchain.farm.cli import add_farm_arguments

# --- stq validate ------------------------------------------------------------------------------

VALIDATE_DOC = """\
Validate a model on a device against the host: run inputs on a board (QEMU netduinoplus2,
the host-native `virtual` board, or a real device on --port), compare every output with the
bit-exact NumPy reference (and the QKeras model with --model), stream results to
OUT/results.jsonl (a rerun resumes) and write OUT/summary.{json,md,html}. Exit 1 on any
host/device mismatch."""


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True,
                   help="netduinoplus2 (QEMU), virtual (host build over a pty), or the board "
                        "flashed behind --port")
    p.add_argument("--port", action="append",
                   help="serial port or pyserial URL (/dev/ttyACM0, socket://H:P); repeat it to "
                        "shard the inputs over several boards")
    p.add_argument("--artifact", type=Path, default=Path("out/digits"),
                   help="OUTDIR of `stq convert` (default out/digits)")
    p.add_argument("--dataset", default="digits", help="test split to run (default digits)")
    p.add_argument("--inputs", type=Path, help=".npy of integer inputs (N, *input shape)")
    p.add_argument("--limit", type=int, help="only the first N inputs")
    p.add_argument("--model", type=Path, help="QKeras .h5: also compare with the float model")
    p.add_argument("--elf", type=Path, help="prebuilt firmware for an emulated board")
    p.add_argument("--timeout", type=float, help="seconds to wait for each reply")
    p.add_argument("--restart", action="store_true", help="discard earlier results in OUT")
    p.add_argument("-o", "--output", type=Path, default=Path("out/validate"),
                   help="report directory (default out/validate)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_farm_arguments(p)


def run_validate(args: argparse.Namespace) -> int:
    from toolchain.farm.cli import farm_from_args
    from toolchain.validate.run import ValidateConfig, env_progress_default, validate

    progress = not args.no_progress and env_progress_default()
    farm = farm_from_args(args, args.artifact, args.output, args.port, progress)
    cfg = ValidateConfig(
        board=args.board, artifact=args.artifact, out_dir=args.output,
        port=args.port[0] if args.port and farm is None else None, farm=farm,
        dataset=None if args.inputs else args.dataset, inputs=args.inputs, limit=args.limit,
        model=args.model, elf=args.elf, timeout=args.timeout, restart=args.restart,
        progress=progress,
    )
    s = validate(cfg)
    print(f"validate: {s['bit_exact']}/{s['validated']} bit-exact, top-1 agreement "
          f"{s['top1_agreement']:.4f}; report {args.output / 'summary.md'}")
    if s["mismatches"]:
        fm = s["first_mismatch"]
        print(f"stq validate: {s['mismatches']} mismatches; first: input {fm['i']}: device "
              f"{fm['device']} != reference {fm['reference']}", file=sys.stderr)
        return 1
    return 0


COMMANDS = [
    Command("validate", "run inputs on a device, compare with the host",
            VALIDATE_DOC, add_validate_arguments, run_validate),
]
