"""Run firmware on an emulated board (QEMU): boot it, say hello over the UART and, with
--input, run one inference and print its cost and output bytes."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolchain.boards import load_board
from toolchain.device import StqDevice
from toolchain.errors import StqError
from toolchain.qemu import QemuBoard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", required=True, help="an emulated board, e.g. netduinoplus2")
    parser.add_argument("--elf", type=Path, required=True, help="firmware ELF from `stq build`")
    parser.add_argument("--timeout", type=float, default=120.0, help="wall-time limit (s)")
    parser.add_argument("--input", type=Path, default=None, help="raw input bytes to run once")
    parser.add_argument("--profile", action="store_true", help="also print per-layer costs")


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if not board.emulated:
        raise StqError(f"board {board.name} is not emulated: use `stq flash` and a serial port")
    with QemuBoard(args.elf, board.qemu_machine, timeout=args.timeout) as qemu:
        with StqDevice.open(qemu.port_url, timeout=min(60.0, args.timeout)) as dev:
            info = dev.hello()
            print(
                f"{info.board}: model {info.model} hash {info.hash[:16]} in {info.input_bytes} B "
                f"out {info.output_bytes} B arena {info.arena_bytes} B build {info.build}"
            )
            if args.input is not None:
                out, cost = dev.infer(args.input.read_bytes())
                print(f"cost: {cost.ticks} ticks, {cost.instructions} instructions")
                print(f"output: {out.hex()}")
                if args.profile:
                    for layer in dev.profile():
                        print(f"  {layer.index:3d} {layer.name:24s} {layer.instructions} instr")
            dev.quit()
        code = qemu.wait(10.0)
    if code not in (0, None):
        raise StqError(f"QEMU exited with code {code}")
    return 0
