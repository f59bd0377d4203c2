"""Commands on firmware: build, boards, flash and run (QEMU)."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from pathlib import Path

from toolchain.cli.command import (
    add_board_arguments,
    add_boards_dir_argument,
    add_json_argument,
    collect,
    positive_float,
    positive_int,
)
from toolchain.device.qemu import QemuBoard
from toolchain.device.text_client import StqDevice
from toolchain.errors import StqError
from toolchain.firmware.boards import board_paths, load_board, load_board_file
from toolchain.firmware.build import build, check_firmware_elf
from toolchain.firmware.flash import TOOLS, flash_command, pick_tool, resolve_images
from toolchain.firmware.mlperf import MODEL_IDS
from toolchain.firmware.project import PROTOCOLS

# --- stq build ---------------------------------------------------------------------------------

BUILD_DOC = """\
Build the firmware for a board: a plain Makefile project (firmware runtime + the model's C
sources from OUTDIR/c/), compiled with arm-none-eabi-gcc into ELF, BIN, HEX and a map file.

A model that does not fit the board fails at link time with the region and the overflow."""


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="ARTIFACT_OR_OUTDIR",
                        help="OUTDIR of `stq convert` or OUTDIR/model.stqa")
    add_board_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="BUILD_DIR",
                        help="build directory (default build/BOARD)")
    parser.add_argument("-j", "--jobs", type=positive_int, default=2,
                        help="parallel compile jobs")
    parser.add_argument("--cmake", action="store_true",
                        help="also write a CMake project (CMakeLists.txt + arm-none-eabi "
                        "toolchain file) that builds the same ELF (docs/firmware.md)")
    add_json_argument(parser, "the build result")
    parser.add_argument(
        "--protocols", default=",".join(PROTOCOLS), metavar="LIST",
        help="device protocols the firmware carries, comma-separated from "
        f"{', '.join(PROTOCOLS)} (default all: what validate, run, the demo and the MLPerf "
        "runner need); a product build ships one, e.g. --protocols binary (framed only: "
        "smaller receive ring and stack, docs/firmware.md)")
    parser.add_argument(
        "--mlperf-model", choices=MODEL_IDS, default=None,
        help="MLPerf Tiny model id that profile%% reports to the runner (default from the input "
        "shape: 32x32x3 ic01, 49x10x1 kws01, 96x96x3 vww01, 640 values ad01, else ic01)")
    parser.add_argument(
        "--mlperf-energy", action="store_true",
        help="MLPerf Tiny energy build: timestamp%% pulses the board's [timestamp] pin (open "
        "drain) instead of printing m-lap-us (needs an interface and a power board)")


def run_build(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    build_dir = args.output or Path("build") / board.name
    result = build(args.model, board, build_dir, jobs=args.jobs, cmake=args.cmake,
                   mlperf_model=args.mlperf_model, mlperf_energy=args.mlperf_energy,
                   protocols=args.protocols)
    if args.json:
        print(json.dumps({
            "board": board.name, "mcu": board.mcu, "build_id": result.build_id,
            "elf": str(result.elf), "bin": str(result.bin), "hex": str(result.hex),
            "map": str(result.map), "build_dir": str(build_dir),
            "protocols": list(result.protocols),
            "cmake": str(build_dir / "CMakeLists.txt") if args.cmake else None,
            "usage": {k: {"used": u, "size": n} for k, (u, n) in result.usage.items()},
        }, indent=2))
        return 0
    print(f"built {result.elf} for {board.name} ({board.mcu}), build id {result.build_id}, "
          f"protocols {','.join(result.protocols)}")
    if result.mlperf is not None:
        m = result.mlperf
        raw = f", db load {m.raw_bytes} takes uint8 images" if m.raw_bytes else ""
        print(f"  MLPerf Tiny: m-model-[{m.model_id}]"
              f"{' (energy build)' if m.energy else ''}{raw}")
        for note in m.notes:
            print(f"  {note}")
    print(f"  {result.summary()}")
    print(f"  also {result.bin.name}, {result.hex.name}, {result.map.name}; `make -C {build_dir}`")
    if args.cmake:
        print(f"  CMake project {build_dir / 'CMakeLists.txt'}: `cmake -S {build_dir} -B "
              f"{build_dir}/cmake-build && cmake --build {build_dir}/cmake-build`")
    return 0


# --- stq boards --------------------------------------------------------------------------------

BOARDS_DOC = """
List the boards stq can build for: the shipped board files and those in --boards-dir (or
STQ_BOARDS_DIR), with MCU, core, flash and RAM, and whether QEMU emulates it."""


def add_boards_arguments(parser: argparse.ArgumentParser) -> None:
    add_boards_dir_argument(parser)
    add_json_argument(parser, "the board list")


def run_boards(args: argparse.Namespace) -> int:
    rows = []
    for name, path in board_paths().items():
        b = load_board_file(path)
        rows.append({"name": name, "mcu": b.mcu, "core": b.core, "flash_bytes": b.flash.length,
                     "ram_bytes": b.ram.length, "emulated": b.emulated,
                     "description": b.description, "path": str(path)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        emu = "QEMU" if r["emulated"] else "real"
        print(f"{r['name']:<18} {r['mcu']:<14} {r['core']:<11} flash {r['flash_bytes']:>8,} B  "
              f"RAM {r['ram_bytes']:>7,} B  {emu:<4}  {r['description']}")
    return 0


# --- stq flash ---------------------------------------------------------------------------------

FLASH_DOC = """\
Program a board with the first installed tool of st-flash, OpenOCD and pyOCD (or --tool);
--dry-run prints the command line instead of running it."""


def add_flash_arguments(parser: argparse.ArgumentParser) -> None:
    add_board_arguments(parser)
    parser.add_argument("--elf", type=Path, default=None, help="firmware ELF from `stq build`")
    parser.add_argument("--bin", type=Path, default=None, help="firmware BIN from `stq build`")
    parser.add_argument(
        "--tool", choices=TOOLS, default=None, help="flash tool (default: first found)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command, do not run it")


def run_flash(args: argparse.Namespace) -> int:
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


# --- stq run -----------------------------------------------------------------------------------

RUN_DOC = """\
Run firmware on an emulated board (QEMU): boot it, say hello over the UART and, with
--input, run one inference and print its cost and output bytes.

With --serial pty --wait the UART is a pty: stq prints its /dev/pts/N path and keeps QEMU
running until Ctrl-C, so any serial tool (the MLPerf Tiny runner, docs/protocol.md) can use it."""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_board_arguments(parser, extra=" (an emulated one, e.g. netduinoplus2)")
    parser.add_argument("--elf", type=Path, required=True, help="firmware ELF from `stq build`")
    parser.add_argument("--timeout", type=positive_float, default=None,
                        help="wall-time limit in s (default 120; with --wait 24 h)")
    parser.add_argument("--input", type=Path, default=None,
                        help="file of raw input bytes (the model's integer input) to run once")
    parser.add_argument("--profile", action="store_true", help="also print per-layer costs")
    parser.add_argument("--serial", choices=("tcp", "pty"), default="tcp",
                        help="the UART on a loopback TCP port (default) or a pty (/dev/pts/N)")
    parser.add_argument("--wait", action="store_true",
                        help="print the serial port and keep QEMU running until Ctrl-C "
                        "(nothing is sent to the board)")
    add_json_argument(parser, "device info, cost and output")


def run_run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if not board.emulated:
        raise StqError(f"board {board.name} is not emulated: use `stq flash` and a serial port")
    check_firmware_elf(args.elf)
    timeout = args.timeout or (24 * 3600.0 if args.wait else 120.0)
    if args.wait:
        return _run_wait(args, board.qemu_machine, timeout)
    data = None
    if args.input is not None:
        try:
            data = args.input.read_bytes()
        except OSError as exc:
            raise StqError(f"cannot read --input {args.input}: {exc.strerror}") from None
    result: dict[str, object] = {}
    with QemuBoard(args.elf, board.qemu_machine, timeout=timeout, serial=args.serial) as qemu:
        with StqDevice.open(qemu.port_url, timeout=min(60.0, timeout)) as dev:
            info = dev.hello()
            result["device"] = {"board": info.board, "model": info.model, "hash": info.hash,
                                "input_bytes": info.input_bytes,
                                "output_bytes": info.output_bytes,
                                "arena_bytes": info.arena_bytes, "build": info.build}
            if not args.json:
                print(f"{info.board}: model {info.model} hash {info.hash[:16]} in "
                      f"{info.input_bytes} B out {info.output_bytes} B arena {info.arena_bytes} B"
                      f" build {info.build}")
            if data is not None:
                if len(data) != info.input_bytes:
                    raise StqError(f"--input {args.input} is {len(data)} bytes; the model on "
                                   f"the device takes {info.input_bytes}")
                out, cost = dev.infer(data)
                result.update(output=out.hex(), ticks=cost.ticks, instructions=cost.instructions)
                if not args.json:
                    print(f"cost: {cost.ticks} ticks, {cost.instructions} instructions")
                    print(f"output: {out.hex()}")
                if args.profile:
                    layers = dev.profile()
                    result["profile"] = [{"index": la.index, "name": la.name,
                                          "instructions": la.instructions} for la in layers]
                    for la in layers if not args.json else []:
                        print(f"  {la.index:3d} {la.name:24s} {la.instructions} instr")
            dev.quit()
        code = qemu.wait(10.0)
    if code not in (0, None):
        raise StqError(f"QEMU exited with code {code}")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def _run_wait(args: argparse.Namespace, machine: str, timeout: float) -> int:
    with QemuBoard(args.elf, machine, timeout=timeout, serial=args.serial) as qemu:
        print(f"serial: {qemu.port_url}", flush=True)
        print("QEMU is running; Ctrl-C stops it", flush=True)
        try:
            code = qemu.wait(timeout + 10.0)
        except KeyboardInterrupt:
            print("stopped")
            return 0
    if code not in (0, None):
        raise StqError(f"QEMU exited with code {code}")
    return 0


BUILD_HELP = "firmware + model -> ELF/BIN/HEX for a board"
BOARDS_HELP = "list the boards (shipped and --boards-dir)"
FLASH_HELP = "program a board (st-flash / openocd / pyocd)"
RUN_HELP = "run firmware on an emulated board (QEMU)"
COMMANDS = collect(globals(), "build", "boards", "flash", "run")
