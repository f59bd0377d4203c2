"""Build the firmware for a board: a plain Makefile project (firmware runtime + the model's C
sources from OUTDIR/c/), compiled with arm-none-eabi-gcc into ELF, BIN, HEX and a map file.

A model that does not fit the board fails at link time with the region and the overflow."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolchain.boards import load_board
from toolchain.build import build


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="OUTDIR of `stq convert` or OUTDIR/model.stqa")
    parser.add_argument("--board", required=True, help="board name (a file in boards/)")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="build directory (default build/BOARD)"
    )
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs")


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    build_dir = args.output or Path("build") / board.name
    result = build(args.model, board, build_dir, jobs=args.jobs)
    print(f"built {result.elf} for {board.name} ({board.mcu}), build id {result.build_id}")
    print(f"  {result.summary()}")
    print(f"  also {result.bin.name}, {result.hex.name}, {result.map.name}; `make -C {build_dir}`")
    return 0
