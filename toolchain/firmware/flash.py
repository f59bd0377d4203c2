"""Command lines that program a board: st-flash, OpenOCD or pyOCD, from the board file."""

from __future__ import annotations

import shutil
from pathlib import Path

from toolchain.errors import StqError
from toolchain.firmware.boards import Board

TOOLS = ("st-flash", "openocd", "pyocd")


def flash_command(board: Board, tool: str, elf: Path | None, bin_path: Path | None) -> list[str]:
    """The command line that writes the firmware with ``tool``.

    st-flash needs the raw BIN (written at the flash origin); OpenOCD and pyOCD take the ELF
    (pyOCD also a BIN at the flash origin)."""
    p = board.program
    origin = f"0x{board.flash.origin:08x}"
    if tool == "st-flash":
        if not p.st_flash:
            raise StqError(f"board {board.name} cannot be flashed with st-flash (program.st_flash)")
        if bin_path is None:
            raise StqError("st-flash writes a .bin: pass --bin (or an --elf with a .bin beside it)")
        return ["st-flash", "--reset", "write", str(bin_path), origin]
    if tool == "openocd":
        image = elf or bin_path
        if image is None:
            raise StqError("openocd needs --elf or --bin")
        program = f"program {image} verify reset exit"
        if elf is None:
            program = f"program {image} {origin} verify reset exit"
        return ["openocd", "-f", p.openocd_interface, "-f", p.openocd_target, "-c", program]
    if tool == "pyocd":
        if elf is not None:
            return ["pyocd", "flash", "-t", p.pyocd_target, str(elf)]
        if bin_path is None:
            raise StqError("pyocd needs --elf or --bin")
        return ["pyocd", "flash", "-t", p.pyocd_target, "--base-address", origin, str(bin_path)]
    raise StqError(f"unknown flash tool '{tool}'; known tools: {', '.join(TOOLS)}")


def resolve_images(elf: Path | None, bin_path: Path | None) -> tuple[Path | None, Path | None]:
    """Check the given images exist; a BIN beside the ELF is used when only --elf is given."""
    if elf is None and bin_path is None:
        raise StqError("pass --elf FW.elf or --bin FW.bin (from `stq build`)")
    for path in (elf, bin_path):
        if path is not None and not path.is_file():
            raise StqError(f"firmware image {path} does not exist (run `stq build` first)")
    if bin_path is None and elf is not None and elf.with_suffix(".bin").is_file():
        bin_path = elf.with_suffix(".bin")
    return elf, bin_path


def pick_tool(board: Board, preferred: str | None) -> str:
    """The preferred tool, else the first of st-flash / openocd / pyocd installed."""
    if preferred is not None:
        return preferred
    for tool in TOOLS:
        if tool == "st-flash" and not board.program.st_flash:
            continue
        if shutil.which(tool):
            return tool
    raise StqError(
        f"no flash tool found for board {board.name}: install one of {', '.join(TOOLS)} "
        "(or use --dry-run to print the command)"
    )
