"""`stq demo`: the whole pipeline on the bundled digits data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from toolchain.cli.command import Command

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
    p.add_argument("-o", "--output", default=str(d.out), metavar="OUTDIR")
    p.add_argument("--model", type=Path, help="use this QKeras model instead of training one")
    p.add_argument("--fp-model", type=Path, help="FP baseline to compare (with --model)")
    p.add_argument("--dataset", default=d.dataset, help="dataset (digits)")
    p.add_argument("--data-dir", help="local dataset folder, for datasets other than digits")
    p.add_argument("--board", default=d.board, help="board to run on (default: QEMU "
                   "netduinoplus2)")
    p.add_argument("--port", help="serial port / pyserial URL of a real board running the "
                   "firmware (instead of QEMU)")
    p.add_argument("--real-board", default=d.real_board,
                   help="a real board to build and budget-check as well")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--validate-limit", type=int, default=d.validate_limit)
    p.add_argument("--attack-limit", type=int, default=d.attack_limit)
    p.add_argument("--budget", default=d.budget, help="flash+RAM budget (default 410KB)")
    p.add_argument("--packing", default=d.packing, choices=("2bit", "base3"))
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_demo(args: argparse.Namespace) -> int:
    from toolchain.pipeline.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=Path(args.output), model=args.model, fp_model=args.fp_model,
                     dataset=args.dataset, data_dir=args.data_dir, board=args.board,
                     port=args.port, real_board=args.real_board, epochs=args.epochs,
                     validate_limit=args.validate_limit, attack_limit=args.attack_limit,
                     budget=args.budget, packing=args.packing)
    s = run_demo(cfg)
    h = s["headline"]
    if args.json:
        print(json.dumps(s, indent=1, default=str))
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


COMMANDS = [
    Command("demo", "the whole pipeline on the bundled digits data",
            DEMO_DOC, add_demo_arguments, run_demo),
]
