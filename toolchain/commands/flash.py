"""Program a board with the first installed tool of st-flash, OpenOCD and pyOCD (or --tool);
--dry-run prints the command line instead of running it."""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from toolchain.boards import load_board
from toolchain.errors import StqError
from toolchain.flash import TOOLS, flash_command, pick_tool, resolve_images


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", required=True, help="board name (a file in boards/)")
    parser.add_argument("--elf", type=Path, default=None, help="firmware ELF from `stq build`")
    parser.add_argument("--bin", type=Path, default=None, help="firmware BIN from `stq build`")
    parser.add_argument(
        "--tool", choices=TOOLS, default=None, help="flash tool (default: first found)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command, do not run it")


def run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if args.dry_run:
        # no image needs to exist and no tool needs to be installed to print the command
        elf, bin_path = args.elf, args.bin
        if elf is None and bin_path is None:
            raise StqError("pass --elf FW.elf or --bin FW.bin (from `stq build`)")
        if bin_path is None and elf is not None:
            bin_path = elf.with_suffix(".bin")
        tool = args.tool or "st-flash"
        if tool == "st-flash" and not board.program.st_flash:
            tool = "openocd"
        print(shlex.join(flash_command(board, tool, elf, bin_path)))
        return 0
    elf, bin_path = resolve_images(args.elf, args.bin)
    cmd = flash_command(board, pick_tool(board, args.tool), elf, bin_path)
    print(shlex.join(cmd))
    if board.emulated:
        print(f"note: {board.name} is normally run under QEMU (`stq run`)")
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise StqError(f"{cmd[0]} failed with exit code {proc.returncode}")
    return 0
