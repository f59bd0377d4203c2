"""Commands of the robustness evaluation: attack and report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from toolchain.cli.command import add_json_argument, add_link_arguments, collect
from toolchain.farm.cli import add_farm_arguments
from toolchain.robustness.registry import BUDGETS, DEFAULT_ATTACKS

# --- stq attack --------------------------------------------------------------------------------

ATTACK_DOC = """\
Adversarial evaluation: white-box FGSM, PGD (with restarts), AutoAttack (APGD-CE, APGD-DLR,
Square), PGD with BPDA/EOT and Carlini-Wagner L2 on the Keras model; black-box Square,
Boundary, HopSkipJump and ZOO on an oracle (the device with --board/--port, the host-compiled
C, or the NumPy reference); transfer attacks (--transfer-from, and the source x target matrix
with --transfer). L-inf attacks are scored at --eps, L2 attacks at --l2-eps; every attack also
runs at half its budget (the convergence check) and is seeded. Every adversarial input is
checked on the host reference and the device (outputs must be identical; exit 1 otherwise).
Writes OUT/results.json and the report; a rerun with the same settings resumes from
OUT/chunks.jsonl (queries are logged to OUT/queries.jsonl). An int8 .tflite MODEL is attacked
white-box through a float twin built from its integer graph (converted into OUT/model unless
--artifact is given), on images of --dataset/--data-dir mapped onto its input range."""


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {s!r}") from None


def _budget_help() -> str:
    from toolchain.robustness.registry import AttackConfig, for_dataset

    def what(name: str) -> str:
        c: AttackConfig = for_dataset("digits", budget=name)
        return (f"{name}: PGD {c.pgd_iter} steps x {c.pgd_restarts} restarts, APGD "
                f"{c.apgd_iter}, C&W {c.cw_iter} x {c.cw_search}, Square {c.square_iter} "
                f"iterations/image, Boundary {c.boundary_iter}, HSJ {c.hsj_iter}")

    return "named attack budget (default standard). " + "; ".join(what(b) for b in BUDGETS)


def add_attack_arguments(p: argparse.ArgumentParser) -> None:
    from toolchain.robustness.registry import names

    p.add_argument("model_file", type=Path, nargs="?", metavar="MODEL",
                   help="the model to attack (the same as --model; give it first)")
    p.add_argument("--model", type=Path, help="QKeras model (.h5), int8 TFLite model "
                   "(.tflite: white-box through its float twin, black-box on the integer model) "
                   "or an ensemble folder of `stq ensemble` (attacked as one model)")
    p.add_argument("--artifact", type=Path, help="OUTDIR of `stq convert` for this model (the "
                   "integer host model and the device); without it the Keras model is scored, "
                   "and a .tflite model is converted into OUT/model")
    p.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                   help=f"comma-separated, from {','.join(names())} (default %(default)s)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--board", help="netduinoplus2 (QEMU) or virtual (host build over a pty)")
    dev.add_argument("--port", action="append",
                     help="serial port or pyserial URL of a flashed board; repeat it to shard "
                          "black-box attacks by image over several boards")
    dev.add_argument("--oracle", choices=("reference", "host-c"), default="reference",
                     help="black-box oracle without a device (default %(default)s)")
    p.add_argument("--elf", type=Path, help="prebuilt firmware for an emulated board")
    add_link_arguments(p)
    p.add_argument("--dataset", default="digits", help="test split to attack (default digits; "
                   "cifar10, svhn and speech_commands need --data-dir)")
    p.add_argument("--data-dir", type=Path, help="local folder (or archive) of --dataset, e.g. "
                   "the CIFAR-10 python batches (cifar-10-batches-py/); nothing is downloaded")
    p.add_argument("--inputs", type=Path, metavar="FILE", help="attack these inputs instead: "
                   ".npz with x and y (or x_test, y_test), or .npy with --labels")
    p.add_argument("--labels", type=Path, metavar="FILE.npy", help="class indices for an "
                   ".npy --inputs")
    p.add_argument("--limit", type=int, help="number of test images (default per dataset)")
    p.add_argument("--eps", type=_floats, help="L-inf epsilons, e.g. 0.05,0.1,0.2,0.3")
    p.add_argument("--l2-eps", type=_floats, help="L2 epsilons for the L2 attacks, e.g. "
                   "0.5,1,2,3")
    p.add_argument("--budget", choices=tuple(BUDGETS), default="standard",
                   help=_budget_help())
    p.add_argument("--max-queries", type=int, help="cap on the queries of one black-box "
                   "attack run (per epsilon when bounded); images beyond it stay unattacked")
    for name, what in (("pgd-iter", "PGD steps"), ("pgd-restarts", "PGD restarts"),
                       ("apgd-iter", "APGD steps (AutoAttack)"), ("cw-iter", "C&W iterations"),
                       ("square-iter", "Square iterations (queries) per image"),
                       ("square-restarts", "Square restarts per image (each from the clean "
                        "image; above 1, --converge-up-to doubles restarts, not iterations)"),
                       ("boundary-iter", "Boundary iterations"),
                       ("hsj-iter", "HopSkipJump iterations"),
                       ("hsj-restarts", "HopSkipJump restarts: runs with other seeds, per image "
                        "the smallest adversarial (above 1, --converge-up-to doubles restarts; "
                        "a run with more reuses the first ones' chunks)"),
                       ("zoo-iter", "ZOO iterations")):
        p.add_argument(f"--{name}", type=int, help=f"{what} (default: from --budget)")
    p.add_argument("--zoo-step", type=float, help="ZOO finite-difference step (default 0.1)")
    p.add_argument("--eot", type=int, help="gradient samples of pgd-bpda (EOT, default 1)")
    p.add_argument("--no-convergence", action="store_true", help="skip the half-budget runs "
                   "(the report then cannot say whether an attack converged)")
    p.add_argument("--converge-up-to", type=int, metavar="F",
                   help="double the budget of every attack (and epsilon) that did not "
                   "converge, re-running only those, until it converges or reaches F times "
                   "--budget (a power of 2; default 1: never)")
    p.add_argument("--no-sanity", action="store_true", help="skip PGD at the whole input range")
    p.add_argument("--chunk", type=int, help="images per black-box call (resume unit, default 5)")
    p.add_argument("--seed", type=int, help="seed of every attack (default 0)")
    p.add_argument("--transfer-from", type=Path, action="append", default=[],
                   metavar="MODEL.h5", help="craft PGD on this model, replay on --model")
    p.add_argument("--transfer", type=Path, nargs="+", default=[], metavar="MODEL.h5",
                   help="also the transfer matrix of --model and these models (PGD, source x "
                   "target, white-box diagonal)")
    p.add_argument("--label", help="model name in the report (default: from the file name)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("-o", "--output", type=Path, default=Path("out/attack"),
                   help="results directory (default out/attack)")
    add_farm_arguments(p)
    add_json_argument(p, "the results (results.json)")


def run_attack(args: argparse.Namespace) -> int:
    import sys

    from toolchain.errors import StqError
    from toolchain.reports import robustness as robustness_report
    from toolchain.robustness import evaluate as attacks_eval
    from toolchain.robustness import oracles, targets
    from toolchain.robustness.registry import for_dataset

    cfg = for_dataset(
        args.dataset, budget=args.budget,
        attacks=tuple(a.strip() for a in args.attacks.split(",") if a.strip()),
        eps=args.eps, l2_eps=args.l2_eps, limit=args.limit, max_queries=args.max_queries,
        pgd_iter=args.pgd_iter, pgd_restarts=args.pgd_restarts, apgd_iter=args.apgd_iter,
        cw_iter=args.cw_iter, square_iter=args.square_iter,
        square_restarts=args.square_restarts, boundary_iter=args.boundary_iter,
        hsj_iter=args.hsj_iter, hsj_restarts=args.hsj_restarts, zoo_iter=args.zoo_iter,
        zoo_step=args.zoo_step,
        eot=args.eot, chunk=args.chunk, seed=args.seed,
        convergence=False if args.no_convergence else None,
        converge_up_to=args.converge_up_to, sanity=False if args.no_sanity else None)
    from toolchain.farm.cli import farm_from_args, write_farm_table

    model = _model(args)
    if targets.is_ensemble(model):  # `stq attack ENSEMBLE`: the folder is the artifact too
        if args.artifact is not None and Path(args.artifact).resolve() != model.resolve():
            raise StqError(f"{model} is an ensemble folder; --artifact must be left out")
        args.artifact = model
    inputs = oracles.load_inputs(args.inputs, args.labels) if args.inputs else None
    if model.suffix.lower() == ".tflite" and args.artifact is None and model.is_file():
        inputs = inputs or _dataset(args.dataset, args.data_dir)
        args.artifact = _convert_tflite(model, args.output / "model", inputs[0][:cfg.limit],
                                        f"{model.name} on {args.inputs or args.dataset}")
    farm = farm_from_args(args, args.artifact or Path("."), args.output, args.port)
    if (args.board or args.port or farm) and args.artifact is None:
        raise StqError("--board/--port/--qemu/--devices need --artifact (the converted model "
                       "the device runs)")
    for p in (model, *args.transfer, *args.transfer_from):
        if not Path(p).is_file() and not targets.is_ensemble(p):
            raise StqError(f"model {p} does not exist")
    res = attacks_eval.evaluate(
        model, args.artifact, cfg, args.dataset, args.output, backend=args.oracle,
        board=None if farm else args.board, port=None if farm or not args.port else args.port[0],
        elf=args.elf, transfer_from=tuple(args.transfer_from), label=args.label, inputs=inputs,
        progress=args.progress, transfer=tuple(args.transfer), farm=farm,
        data_dir=args.data_dir, link_timeout=args.timeout, give_up_after=args.give_up_after,
        log=(lambda m: print(m, file=sys.stderr)) if args.json else print)  # stdout: JSON only
    paths = robustness_report.write_reports(args.output, [res])
    if args.json:
        print(json.dumps(res, indent=1, default=float))
    else:
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


def _model(args: argparse.Namespace) -> Path:
    from toolchain.errors import StqError

    if (args.model is None) == (args.model_file is None):
        raise StqError("name the model to attack once: `stq attack MODEL` or --model MODEL")
    return Path(args.model or args.model_file)


def _dataset(name: str, data_dir: Path | None) -> tuple[Any, Any]:
    from toolchain.training import datasets

    ds = datasets.load(name, data_dir)
    return ds.x_test, ds.y_test


def _convert_tflite(model: Path, out: Path, x: object, where: str) -> Path:
    """`stq attack model.tflite` without --artifact: convert it into OUT/model first (the
    integer reference, the float twin and the device firmware are built from that), once the
    data is known to fit the model (nothing is written otherwise)."""
    import sys

    import numpy as np

    from toolchain.frontend.tflite import convert_tflite
    from toolchain.pipeline.convert import convert
    from toolchain.robustness.twin import check_data

    check_data(convert_tflite(model), np.asarray(x), where)
    print(f"[attack] converting {model} into {out} (pass --artifact to reuse a conversion)",
          file=sys.stderr)
    convert(model, out)
    return out


# --- stq report --------------------------------------------------------------------------------

REPORT_DOC = """\
Robustness report from one or more `stq attack` result directories (e.g. the FP, int8, STQ
and STQ+JR models): accuracy per attack and epsilon side by side, accuracy-vs-epsilon plots,
convergence, L2 curves, host vs device, query counts, the gradient-masking checks and the
transfer matrix, as HTML, Markdown and JSON."""


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, nargs="+", metavar="RESULTS_DIR",
                   help="directories written by `stq attack -o` (or their results.json)")
    p.add_argument("-o", "--output", type=Path, default=Path("out/robustness"),
                   help="report directory (default out/robustness)")
    add_json_argument(p, "the merged report (robustness.json)")


def run_report(args: argparse.Namespace) -> int:
    from toolchain.reports import robustness as R

    results = R.load_results(args.results)
    paths = R.write_reports(args.output, results)
    if args.json:
        print(paths["json"].read_text())
    else:
        print(R.markdown(results))
        print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return 0


ATTACK_HELP = "adversarial attacks on the host model and device"
REPORT_HELP = "robustness report from attack results"
COMMANDS = collect(globals(), "attack", "report")
