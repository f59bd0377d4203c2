"""`stq demo`: the whole pipeline on the bundled digits data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from toolchain.cli.command import (
    add_board_arguments,
    add_json_argument,
    add_progress_argument,
    collect,
    port_url,
    positive_int,
)
from toolchain.errors import StqError

# --- stq demo ----------------------------------------------------------------------------------

DEMO_DOC = """\
The whole pipeline on the bundled digits data, with no flags: train the digits STQ+JR model
and an FP baseline, convert, build the firmware for the QEMU board and a real board, check the
memory budget against the linked ELFs, boot the firmware in QEMU and validate test images
against the host reference (bit-exact), run a reduced attack set (PGD white-box, Square
black-box with the device as the oracle) and write one report. Finished stages are cached by
content hash: an interrupted demo resumes where it stopped."""


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    from toolchain.pipeline.demo import DemoConfig

    d = DemoConfig()
    p.add_argument("-o", "--output", default=str(d.out), metavar="OUTDIR",
                   help="folder for every stage's output and the report")
    p.add_argument("--model", type=Path, help="use this QKeras model (.h5) instead of training "
                   "one")
    p.add_argument("--fp-model", type=Path, help="FP baseline (.h5) to compare (with --model)")
    p.add_argument("--dataset", default=d.dataset, choices=("digits",), help="dataset")
    p.add_argument("--data-dir", help="local dataset folder, for datasets other than digits")
    add_board_arguments(p, required=False, extra=" (the default runs it under QEMU)")
    p.set_defaults(board=d.board)
    p.add_argument("--port", type=port_url, help="serial port / pyserial URL of a real board "
                   "running the firmware (instead of QEMU)")
    p.add_argument("--real-board", default=d.real_board, metavar="BOARD",
                   help="a real board to build and budget-check as well")
    p.add_argument("--epochs", type=positive_int, default=d.epochs,
                   help="training epochs per model")
    p.add_argument("--validate-limit", type=positive_int, default=d.validate_limit,
                   help="test images validated on the device")
    p.add_argument("--attack-limit", type=positive_int, default=d.attack_limit,
                   help="test images attacked")
    p.add_argument("--budget", default=d.budget, help="flash+RAM footprint budget in bytes "
                   "(KB = 1000 B, KiB = 1024 B)")
    p.add_argument("--packing", default=d.packing, choices=("2bit", "base3"),
                   help="ternary weight packing")
    add_progress_argument(p)
    add_json_argument(p, "the summary")


def run_demo(args: argparse.Namespace) -> int:
    from toolchain.budget.analysis import parse_size
    from toolchain.firmware.boards import load_board
    from toolchain.pipeline.demo import DemoConfig, run_demo

    # bad options fail now, not after minutes of training
    load_board(args.board)
    load_board(args.real_board)
    parse_size(args.budget)
    for path in (args.model, args.fp_model):
        if path is not None and not path.is_file():
            raise StqError(f"model file {path} does not exist")

    cfg = DemoConfig(out=Path(args.output), model=args.model, fp_model=args.fp_model,
                     dataset=args.dataset, data_dir=args.data_dir, board=args.board,
                     port=args.port, real_board=args.real_board, epochs=args.epochs,
                     validate_limit=args.validate_limit, attack_limit=args.attack_limit,
                     budget=args.budget, packing=args.packing,
                     progress=not args.no_progress and not args.json)
    # with --json, stdout holds only the JSON: the stage log goes to stderr
    s = run_demo(cfg, log=(lambda line: print(line, file=sys.stderr, flush=True))
                 if args.json else print)
    h = s["headline"]
    if args.json:
        print(json.dumps(s, indent=1, default=str))
        return 0
    total = sum(s["timings"].values())
    print(f"[demo] done in {total:.0f} s. Report: {s['report']['html']}")
    from toolchain.pipeline.report import attack_text

    acc = h["qkeras_accuracy"]
    dev = f"device {h['device_accuracy']:.3f} (n={h['device_n']})"
    print(f"[demo] accuracy: QKeras {acc:.3f} (n={h['qkeras_n']}), {dev}"
          if acc is not None else f"[demo] accuracy: {dev}")
    print(f"[demo] footprint {h['footprint_bytes']:,} B of the {h['budget_bytes']:,} B budget; "
          f"host/device bit-exact {h['bit_exact']}")
    print(f"[demo] accuracy under attack at eps 0.1 (device): PGD "
          f"{attack_text(h['pgd_0.1_device'])}, Square {attack_text(h['square_0.1_device'])}")
    return 0


DEMO_HELP = "the whole pipeline on the bundled digits data"
COMMANDS = collect(globals(), "demo")
