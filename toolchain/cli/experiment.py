"""`stq experiment`: the method's experiment (fp, int8, stq, stq-jr, Quanos, ensemble)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from toolchain.cli.command import Command

DOC = """\
For a dataset and a zoo model family: train fp, int8, stq, Quanos and (by a per-layer JR search
on a validation split) stq-jr; convert each (and every --baseline model); link int8 + stq +
Quanos into one ensemble firmware; build everything for the board; validate each on the device
(bit-exact against the host reference); attack each on the host and replay every adversarial
input on the device; write one report (Markdown, HTML, JSON, plots). Finished stages are
cached: an interrupted run resumes where it stopped. The device stages can be sharded over
several devices (--qemu N, --port repeated, --devices FILE, --ray; docs/farm.md) with the
same results as one device; the report then has each one's per-device table."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from toolchain.cli.command import port_url
    from toolchain.farm.cli import add_farm_arguments
    from toolchain.pipeline.experiment import BUDGETS, ExperimentConfig

    d = ExperimentConfig()
    p.add_argument("-o", "--output", default=str(d.out), metavar="OUTDIR",
                   help="experiment folder: cached stages, models, report")
    p.add_argument("--model", default=d.model, help="zoo model family (resnet8, dscnn, ...)")
    p.add_argument("--dataset", default=d.dataset, help="cifar10, svhn, speech_commands, digits")
    p.add_argument("--data-dir", help="local dataset folder (nothing is downloaded)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs per variant")
    p.add_argument("--limit", type=int, default=d.limit, help="training examples per variant")
    p.add_argument("--board", default=d.board, help="emulated board to run on")
    p.add_argument("--validate-limit", type=int, default=d.validate_limit,
                   help="test inputs validated on the device per model")
    p.add_argument("--budget", default=d.budget, choices=sorted(BUDGETS),
                   help="attack budget (quick: few images and iterations)")
    p.add_argument("--attack-limit", type=int, help="images attacked (default: the budget's)")
    p.add_argument("--eps", type=float, action="append", help="L-inf epsilon (repeatable)")
    p.add_argument("--jr-candidates", type=int, default=d.jr_candidates,
                   help="per-layer JR weight vectors searched (1-4)")
    p.add_argument("--baseline", action="append", default=[], metavar="MODEL",
                   help="an external baseline model to convert, deploy and attack too")
    p.add_argument("--port", type=port_url, action="append", default=[],
                   help="serial port or pyserial URL of a flashed board; repeat it to shard the "
                        "device stages (validation, adversarial replay) over several boards. "
                        "A board serves only the model whose firmware it runs (stq cannot "
                        "reflash it here); the others are refused and run elsewhere")
    add_farm_arguments(p)
    p.add_argument("--device-queries", action="store_true",
                   help="black-box attacks query the device instead of the host reference (on "
                        "a farm: sharded by image, each image's attack on one device)")
    p.add_argument("--no-convergence", action="store_true",
                   help="skip the half-budget reruns of every attack (the standard budget runs "
                        "them: the report's convergence check)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from toolchain.pipeline.experiment import ExperimentConfig, run_experiment

    cfg = ExperimentConfig(out=Path(args.output), model=args.model, dataset=args.dataset,
                           data_dir=args.data_dir, epochs=args.epochs, limit=args.limit,
                           board=args.board, validate_limit=args.validate_limit,
                           budget=args.budget, attack_limit=args.attack_limit,
                           eps=tuple(args.eps or ()), jr_candidates=args.jr_candidates,
                           baselines=list(args.baseline), ports=tuple(args.port),
                           devices_file=args.devices, qemu=args.qemu, ray=args.ray,
                           block=args.block, device_queries=args.device_queries,
                           convergence=False if args.no_convergence else None,
                           command="stq " + " ".join(shlex.quote(a) for a in args.argv))
    s = run_experiment(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(s, indent=1, default=str))
    else:
        print(f"[experiment] done in {s['seconds']:.0f} s. Report: {s['report']['md']}")
    return 0


COMMANDS = [Command("experiment", "the method's experiment: fp/int8/stq/stq-jr/Quanos/"
                    "ensemble on host and device", DOC, add_arguments, run)]
