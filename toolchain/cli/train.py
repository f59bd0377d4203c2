"""`stq train`: quantization-aware training of a zoo model."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from toolchain.cli.command import collect
from toolchain.errors import StqError

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
    from toolchain.training.train import DEFAULT_JR_LAMBDA, TrainConfig

    d = TrainConfig()
    p.add_argument("--model", default=d.model, help=f"zoo model: {', '.join(zoo.MODELS)}")
    p.add_argument("--variant", default=d.variant, help=f"one of {', '.join(zoo.VARIANTS)}")
    p.add_argument("--dataset", help="digits, cifar10, svhn, speech_commands (default: the "
                   "model's own)")
    p.add_argument("--data-dir", help="folder (or archive) of a local dataset; nothing is "
                   "downloaded")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--jr-lambda", type=float, help=f"Jacobian regularization strength "
                   f"(default {DEFAULT_JR_LAMBDA} for stq-jr, 0 otherwise)")
    p.add_argument("--jr-projections", type=int, default=d.jr_projections,
                   help="random projections per step")
    p.add_argument("--jr-layer", action="append", type=_jr_layer, default=[],
                   metavar="NAME[=WEIGHT]", help="also regularize this layer's output "
                   "(repeatable)")
    p.add_argument("--no-stochastic", action="store_true",
                   help="train stochastic_ternary deterministically (as plain Keras fit does)")
    p.add_argument("--float-edges", action="store_true",
                   help="ternary first and last layers too (default: int8)")
    p.add_argument("--limit", type=int, help="use at most N training examples")
    p.add_argument("-o", "--output", default="out/train", metavar="OUTDIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_train(args: argparse.Namespace) -> int:
    from toolchain.training.train import TrainConfig, train

    if args.limit is not None and args.limit < 1:
        raise StqError("--limit must be >= 1")
    cfg = TrainConfig(model=args.model, variant=args.variant, dataset=args.dataset,
                      data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, seed=args.seed,
                      jr_lambda=args.jr_lambda, jr_projections=args.jr_projections,
                      jr_layers=dict(args.jr_layer), stochastic=not args.no_stochastic,
                      int8_edges=not args.float_edges, limit=args.limit)
    r = train(cfg, args.output, progress=not args.json)
    if args.json:
        print(json.dumps(asdict(r)))
    else:
        print(f"trained {cfg.model} ({cfg.variant}) on {cfg.dataset or 'its dataset'}: clean "
              f"test accuracy {r.test_accuracy:.4f} in {r.seconds:.1f} s -> {r.model_path}")
    return 0


TRAIN_HELP = "train a zoo model (QKeras) on a dataset"
COMMANDS = collect(globals(), "train")
