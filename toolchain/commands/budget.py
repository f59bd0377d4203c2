"""Memory budget of a converted model: per-layer flash (weights, requantization parameters,
kernel code) and RAM (activations, arena), the optimal arena plan next to its lower bound and
the greedy planner, checked against a board and a budget (default 410 KB; KB = 1000 B,
KiB = 1024 B). With --elf the prediction is verified against the linked firmware (model hash,
exact symbol sizes) and code, stack and runtime come from it. Exit code 1 when over."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from toolchain.budget import DEFAULT_BUDGET, advice, analyze, checks, load_graph, parse_size


def add_arguments(p: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from toolchain import budget_report
    from toolchain.boards import load_board
    from toolchain.budget_elf import ElfImage, reconcile

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
