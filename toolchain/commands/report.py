"""Robustness report from one or more `stq attack` result directories (e.g. the FP, int8, STQ
and STQ+JR models): accuracy per attack and epsilon side by side, accuracy-vs-epsilon plots,
host vs device, query counts and the gradient-masking diagnostic, as HTML, Markdown and JSON."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, nargs="+", metavar="RESULTS_DIR",
                   help="directories written by `stq attack -o` (or their results.json)")
    p.add_argument("-o", "--output", type=Path, default=Path("out/robustness"),
                   help="report directory (default out/robustness)")


def run(args: argparse.Namespace) -> int:
    from toolchain import robustness_report as R

    results = R.load_results(args.results)
    paths = R.write_reports(args.output, results)
    print(R.markdown(results))
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return 0
