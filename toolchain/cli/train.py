"""`stq train`: quantization-aware training of a zoo model."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from toolchain.cli.command import (
    add_json_argument,
    add_progress_argument,
    collect,
    positive_float,
    positive_int,
)

# --- stq train ---------------------------------------------------------------------------------

TRAIN_DOC = """\
Train a zoo model with quantization-aware training (QKeras): fp, int8, stq (stochastic
ternary) or stq-jr (with Jacobian regularization). Writes the model (.h5), a per-epoch CSV log
and a JSON summary; prints the clean test accuracy."""


def _jr_layer(text: str) -> tuple[str, float]:
    name, _, weight = text.partition("=")
    try:
        return name, float(weight) if weight else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jr-layer {text!r}: expected NAME or NAME=WEIGHT"
                                         ) from None


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from toolchain.training import zoo
    from toolchain.training.datasets import DATASETS
    from toolchain.training.train import DEFAULT_JR_LAMBDA, TrainConfig

    d = TrainConfig()
    p.add_argument("--model", default=d.model, choices=tuple(zoo.MODELS), help="zoo model")
    p.add_argument("--variant", default=d.variant, choices=zoo.VARIANTS,
                   help="fp (float), int8, stq (stochastic ternary) or stq-jr (with Jacobian "
                   "regularization)")
    p.add_argument("--dataset", choices=tuple(DATASETS),
                   help="dataset to train on (default: the model's own)")
    p.add_argument("--data-dir", help="folder (or archive) of a local dataset; nothing is "
                   "downloaded")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="training epochs")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help="examples per training step")
    p.add_argument("--learning-rate", type=positive_float, default=d.learning_rate,
                   help="Adam learning rate")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (weights, order)")
    p.add_argument("--jr-lambda", type=float, help=f"Jacobian regularization strength "
                   f"(default {DEFAULT_JR_LAMBDA} for stq-jr, 0 otherwise)")
    p.add_argument("--jr-projections", type=positive_int, default=d.jr_projections,
                   help="random projections per step")
    p.add_argument("--jr-layer", action="append", type=_jr_layer, default=[],
                   metavar="NAME[=WEIGHT]", help="also regularize this layer's output "
                   "(repeatable)")
    p.add_argument("--no-stochastic", action="store_true",
                   help="train stochastic_ternary deterministically (as plain Keras fit does)")
    p.add_argument("--float-edges", action="store_true",
                   help="ternary first and last layers too (default: int8)")
    p.add_argument("--limit", type=positive_int, help="use at most N training examples")
    p.add_argument("-o", "--output", default="out/train", metavar="OUTDIR",
                   help="folder for the model (.h5), its per-epoch log (.csv) and summary")
    add_progress_argument(p)
    add_json_argument(p, "the training result")


def run_train(args: argparse.Namespace) -> int:
    from toolchain.training.train import TrainConfig, train

    cfg = TrainConfig(model=args.model, variant=args.variant, dataset=args.dataset,
                      data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, seed=args.seed,
                      jr_lambda=args.jr_lambda, jr_projections=args.jr_projections,
                      jr_layers=dict(args.jr_layer), stochastic=not args.no_stochastic,
                      int8_edges=not args.float_edges, limit=args.limit)
    r = train(cfg, args.output, progress=not args.json, bars=not args.no_progress)
    if args.json:
        print(json.dumps(asdict(r)))
    else:
        print(f"trained {cfg.model} ({cfg.variant}) on {cfg.dataset or 'its dataset'}: clean "
              f"test accuracy {r.test_accuracy:.4f} in {r.seconds:.1f} s -> {r.model_path}")
    return 0


TRAIN_HELP = "train a zoo model (QKeras) on a dataset"
COMMANDS = collect(globals(), "train")
