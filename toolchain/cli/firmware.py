"""Commands on firmware: build, flash, run (QEMU) and budget (flash/RAM against a board)."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from toolchain.budget.analysis import (
    DEFAULT_BUDGET,
    advice,
    analyze,
    checks,
    load_graph,
    parse_size,
)
from toolchain.cli.command import Command
from toolchain.device.qemu import QemuBoard
from toolchain.device.text_client import StqDevice
from toolchain.errors import StqError
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import build
from toolchain.firmware.flash import TOOLS, flash_command, pick_tool, resolve_images
from toolchain.firmware.mlperf import MODEL_IDS

# --- stq build ---------------------------------------------------------------------------------

BUILD_DOC = """\
Build the firmware for a board: a plain Makefile project (firmware runtime + the model's C
sources from OUTDIR/c/), compiled with arm-none-eabi-gcc into ELF, BIN, HEX and a map file.

A model that does not fit the board fails at link time with the region and the overflow."""


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="OUTDIR of `stq convert` or OUTDIR/model.stqa")
    parser.add_argument("--board", required=True, help="board name (a file in boards/)")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="build directory (default build/BOARD)"
    )
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs")
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
    result = build(args.model, board, build_dir, jobs=args.jobs,
                   mlperf_model=args.mlperf_model, mlperf_energy=args.mlperf_energy)
    print(f"built {result.elf} for {board.name} ({board.mcu}), build id {result.build_id}")
    if result.mlperf is not None:
        m = result.mlperf
        raw = f", db load {m.raw_bytes} takes uint8 images" if m.raw_bytes else ""
        print(f"  MLPerf Tiny: m-model-[{m.model_id}]"
              f"{' (energy build)' if m.energy else ''}{raw}")
        for note in m.notes:
            print(f"  {note}")
    print(f"  {result.summary()}")
    print(f"  also {result.bin.name}, {result.hex.name}, {result.map.name}; `make -C {build_dir}`")
    return 0


# --- stq flash ---------------------------------------------------------------------------------

FLASH_DOC = """\
Program a board with the first installed tool of st-flash, OpenOCD and pyOCD (or --tool);
--dry-run prints the command line instead of running it."""


def add_flash_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", required=True, help="board name (a file in boards/)")
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
    parser.add_argument("--board", required=True, help="an emulated board, e.g. netduinoplus2")
    parser.add_argument("--elf", type=Path, required=True, help="firmware ELF from `stq build`")
    parser.add_argument("--timeout", type=float, default=None,
                        help="wall-time limit in s (default 120; with --wait 24 h)")
    parser.add_argument("--input", type=Path, default=None, help="raw input bytes to run once")
    parser.add_argument("--profile", action="store_true", help="also print per-layer costs")
    parser.add_argument("--serial", choices=("tcp", "pty"), default="tcp",
                        help="the UART on a loopback TCP port (default) or a pty (/dev/pts/N)")
    parser.add_argument("--wait", action="store_true",
                        help="print the serial port and keep QEMU running until Ctrl-C "
                        "(nothing is sent to the board)")


def run_run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if not board.emulated:
        raise StqError(f"board {board.name} is not emulated: use `stq flash` and a serial port")
    timeout = args.timeout or (24 * 3600.0 if args.wait else 120.0)
    if args.wait:
        return _run_wait(args, board.qemu_machine, timeout)
    with QemuBoard(args.elf, board.qemu_machine, timeout=timeout, serial=args.serial) as qemu:
        with StqDevice.open(qemu.port_url, timeout=min(60.0, timeout)) as dev:
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


# --- stq budget --------------------------------------------------------------------------------

BUDGET_DOC = """\
Memory budget of a converted model: per-layer flash (weights, requantization parameters,
kernel code) and RAM (activations, arena), the optimal arena plan next to its lower bound and
the greedy planner, checked against a board and a budget (default 410 KB; KB = 1000 B,
KiB = 1024 B). With --elf the prediction is verified against the linked firmware (model hash,
exact symbol sizes) and code, stack and runtime come from it. Exit code 1 when over."""


def add_budget_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, metavar="ARTIFACT_OR_OUTDIR",
                   help="OUTDIR of `stq convert` or OUTDIR/model.stqa")
    p.add_argument("--board", default=None, help="board name (a file in boards/); with --elf "
                   "the board the firmware was built for is the default")
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
    b = analyze(load_graph(args.model))
    if args.elf is not None:
        elf = ElfImage(args.elf)
        if board is None:
            board = load_board(elf.board) if elf.board else None
        if board is None:
            from toolchain.errors import StqError

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


COMMANDS = [
    Command("build", "firmware + model -> ELF/BIN/HEX for a board",
            BUILD_DOC, add_build_arguments, run_build),
    Command("flash", "program a board (st-flash / openocd / pyocd)",
            FLASH_DOC, add_flash_arguments, run_flash),
    Command("run", "run firmware on an emulated board (QEMU)",
            RUN_DOC, add_run_arguments, run_run),
    Command("budget", "per-layer flash/RAM, arena plan, board and budget",
            BUDGET_DOC, add_budget_arguments, run_budget),
]
