"""`stq validate`: inputs on a device, every output compared with the host."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from toolchain.cli.command import (
    add_board_arguments,
    add_json_argument,
    add_link_arguments,
    add_progress_argument,
    collect,
    port_url,
    positive_int,
)
from toolchain.farm.cli import add_farm_arguments
from toolchain.firmware.boards import load_board
from toolchain.training.datasets import DATASETS

# --- stq validate ------------------------------------------------------------------------------

VALIDATE_DOC = """\
Validate a model on a device against the host: run inputs on a board (QEMU netduinoplus2,
the host-native `virtual` board, or a real device on --port), compare every output with the
bit-exact NumPy reference (and the QKeras model with --model), stream results to
OUT/results.jsonl (a rerun resumes) and write OUT/summary.{json,md,html}. Exit 1 on any
host/device mismatch."""


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    add_board_arguments(p, extra=", virtual (the host build over a pty), or the board flashed "
                        "behind --port")
    p.add_argument("--port", type=port_url, action="append",
                   help="serial port or pyserial URL of a flashed board (/dev/ttyACM0, "
                   "socket://HOST:PORT, rfc2217://HOST:PORT); repeat it to shard the inputs over "
                   "several boards")
    p.add_argument("--artifact", type=Path, default=Path("out/digits"),
                   metavar="ARTIFACT_OR_OUTDIR", help="OUTDIR of `stq convert` (or its "
                   "model.stqa)")
    p.add_argument("--dataset", default="digits", choices=tuple(DATASETS),
                   help="test split to run (unless --inputs)")
    p.add_argument("--data-dir", type=Path, help="local folder (or archive) of --dataset, e.g. "
                   "the CIFAR-10 python batches; nothing is downloaded")
    p.add_argument("--inputs", type=Path, help=".npy of integer inputs (N, *input shape) "
                   "instead of a dataset")
    p.add_argument("--limit", type=positive_int, help="only the first N inputs (default: all)")
    p.add_argument("--model", type=Path, help="QKeras .h5: also compare with the float model")
    p.add_argument("--elf", type=Path, help="prebuilt firmware for an emulated board (default: "
                   "built from --artifact)")
    add_link_arguments(p)
    p.add_argument("--restart", action="store_true", help="discard earlier results in OUT")
    p.add_argument("-o", "--output", type=Path, default=Path("out/validate"), metavar="OUT",
                   help="report directory")
    add_progress_argument(p)
    add_json_argument(p, "the summary")
    p.add_argument("--serial", choices=("tcp", "pty"), default="tcp",
                   help="QEMU boards: the UART on a loopback TCP port (default) or on a pty "
                        "(/dev/pts/N, the path any serial tool can open)")
    add_farm_arguments(p)


def run_validate(args: argparse.Namespace) -> int:
    from toolchain.farm.cli import farm_from_args
    from toolchain.validate.run import ValidateConfig, env_progress_default, validate

    if args.board != "virtual" and args.port is None:
        load_board(args.board)  # an unknown board fails now, listing the known ones
    progress = not args.no_progress and not args.json and env_progress_default()
    farm = farm_from_args(args, args.artifact, args.output, args.port, progress)
    cfg = ValidateConfig(
        board=args.board, artifact=args.artifact, out_dir=args.output,
        port=args.port[0] if args.port and farm is None else None, farm=farm,
        dataset=None if args.inputs else args.dataset, inputs=args.inputs, limit=args.limit,
        model=args.model, elf=args.elf, timeout=args.timeout, restart=args.restart,
        give_up_after=args.give_up_after, serial=args.serial, progress=progress,
        data_dir=args.data_dir,
    )
    s = validate(cfg)
    if args.json:
        print(json.dumps(s, indent=2, default=str))
    else:
        print(f"validate: {s['bit_exact']}/{s['validated']} bit-exact, top-1 agreement "
              f"{s['top1_agreement']:.4f} (n={s['validated']}); report "
              f"{args.output / 'summary.md'}")
    if s["mismatches"]:
        fm = s["first_mismatch"]
        print(f"stq validate: {s['mismatches']} mismatches; first: input {fm['i']}: device "
              f"{fm['device']} != reference {fm['reference']}", file=sys.stderr)
        return 1
    return 0


VALIDATE_HELP = "run inputs on a device, compare with the host"
COMMANDS = collect(globals(), "validate")
