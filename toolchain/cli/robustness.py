"""Commands of the robustness evaluation: attack and report."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolchain.cli.command import Command
from toolchain.farm.cli import add_farm_arguments
from toolchain.robustness.attacks import ATTACKS, DEFAULT_ATTACKS

# --- stq attack --------------------------------------------------------------------------------

ATTACK_DOC = """\
Adversarial evaluation: white-box FGSM, PGD and Carlini-Wagner L2 on the QKeras model,
black-box Square, Boundary, HopSkipJump and ZOO on an oracle (the device with --board/--port,
the host-compiled C, or the NumPy reference), transfer attacks crafted on other models
(--transfer-from). Every adversarial input is checked on the host reference and the device
(outputs must be identical; exit 1 otherwise). Writes OUT/results.json and the report; a rerun
with the same settings resumes from OUT/chunks.jsonl (queries are logged to OUT/queries.jsonl)."""


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {s!r}") from None


def add_attack_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="QKeras model (.h5)")
    p.add_argument("--artifact", type=Path, help="OUTDIR of `stq convert` for this model (the "
                   "integer host model and the device); without it the Keras model is scored")
    p.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                   help=f"comma-separated, from {','.join(ATTACKS)} (default %(default)s)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--board", help="netduinoplus2 (QEMU) or virtual (host build over a pty)")
    dev.add_argument("--port", action="append",
                     help="serial port or pyserial URL of a flashed board; repeat it to shard "
                          "black-box attacks by image over several boards")
    dev.add_argument("--oracle", choices=("reference", "host-c"), default="reference",
                     help="black-box oracle without a device (default %(default)s)")
    p.add_argument("--elf", type=Path, help="prebuilt firmware for an emulated board")
    p.add_argument("--dataset", default="digits", help="test split to attack (default digits)")
    p.add_argument("--limit", type=int, help="number of test images (default per dataset)")
    p.add_argument("--eps", type=_floats, help="L-inf epsilons, e.g. 0.05,0.1,0.2,0.3")
    p.add_argument("--budget", type=int, help="query budget per black-box attack run")
    p.add_argument("--pgd-iter", type=int)
    p.add_argument("--cw-iter", type=int)
    p.add_argument("--square-iter", type=int)
    p.add_argument("--boundary-iter", type=int)
    p.add_argument("--hsj-iter", type=int)
    p.add_argument("--zoo-iter", type=int)
    p.add_argument("--zoo-step", type=float, help="ZOO finite-difference step")
    p.add_argument("--chunk", type=int, help="images per black-box call (resume unit)")
    p.add_argument("--seed", type=int)
    p.add_argument("--transfer-from", type=Path, action="append", default=[],
                   metavar="MODEL.h5", help="craft FGSM/PGD on this model, replay on --model")
    p.add_argument("--label", help="model name in the report (default: from the file name)")
    p.add_argument("-o", "--output", type=Path, default=Path("out/attack"),
                   help="results directory (default out/attack)")
    add_farm_arguments(p)


def run_attack(args: argparse.Namespace) -> int:
    import sys

    from toolchain.errors import StqError
    from toolchain.robustness import evaluate as attacks_eval
    from toolchain.robustness import report as robustness_report
    from toolchain.robustness.attacks import for_dataset

    cfg = for_dataset(
        args.dataset, attacks=tuple(a.strip() for a in args.attacks.split(",") if a.strip()),
        eps=args.eps, limit=args.limit, budget=args.budget, pgd_iter=args.pgd_iter,
        cw_iter=args.cw_iter, square_iter=args.square_iter, boundary_iter=args.boundary_iter,
        hsj_iter=args.hsj_iter, zoo_iter=args.zoo_iter, zoo_step=args.zoo_step,
        chunk=args.chunk, seed=args.seed)
    from toolchain.farm.cli import farm_from_args, write_farm_table

    farm = farm_from_args(args, args.artifact or Path("."), args.output, args.port)
    if (args.board or args.port or farm) and args.artifact is None:
        raise StqError("--board/--port/--qemu/--devices need --artifact (the converted model "
                       "the device runs)")
    res = attacks_eval.evaluate(
        args.model, args.artifact, cfg, args.dataset, args.output, backend=args.oracle,
        board=None if farm else args.board, port=None if farm or not args.port else args.port[0],
        elf=args.elf, transfer_from=tuple(args.transfer_from), label=args.label, farm=farm)
    paths = robustness_report.write_reports(args.output, [res])
    print(robustness_report.markdown([res]))
    if "farm" in res:
        print(write_farm_table(args.output, res["farm"]))
    print(f"results {args.output / 'results.json'}; report {paths['html']}")
    try:
        attacks_eval.check_equal(res)
    except StqError as exc:
        print(f"stq attack: {exc}", file=sys.stderr)
        return 1
    return 0


# --- stq report --------------------------------------------------------------------------------

REPORT_DOC = """\
Robustness report from one or more `stq attack` result directories (e.g. the FP, int8, STQ
and STQ+JR models): accuracy per attack and epsilon side by side, accuracy-vs-epsilon plots,
host vs device, query counts and the gradient-masking diagnostic, as HTML, Markdown and JSON."""


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, nargs="+", metavar="RESULTS_DIR",
                   help="directories written by `stq attack -o` (or their results.json)")
    p.add_argument("-o", "--output", type=Path, default=Path("out/robustness"),
                   help="report directory (default out/robustness)")


def run_report(args: argparse.Namespace) -> int:
    from toolchain.robustness import report as R

    results = R.load_results(args.results)
    paths = R.write_reports(args.output, results)
    print(R.markdown(results))
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return 0


COMMANDS = [
    Command("attack", "adversarial attacks on the host model and device",
            ATTACK_DOC, add_attack_arguments, run_attack),
    Command("report", "robustness report from attack results",
            REPORT_DOC, add_report_arguments, run_report),
]
