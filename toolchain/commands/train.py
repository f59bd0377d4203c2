"""Train a zoo model with quantization-aware training (QKeras) and save it (.h5), with a
per-epoch CSV log and a JSON summary."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(p: argparse.ArgumentParser) -> None:
    from toolchain.train import TrainConfig

    d = TrainConfig()
    p.add_argument("--model", default=d.model, help="zoo model (digits, resnet8)")
    p.add_argument("--variant", default=d.variant, help="fp, int8, stq or stq-jr")
    p.add_argument("--dataset", default=d.dataset, help="dataset (digits)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("-o", "--output", default="out/train", metavar="OUTDIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from toolchain.train import TrainConfig, train

    cfg = TrainConfig(args.model, args.variant, args.dataset, args.epochs, args.batch_size,
                      args.learning_rate, args.seed)
    r = train(cfg, args.output, progress=not args.json)
    if args.json:
        print(json.dumps(asdict(r)))
    else:
        print(f"trained {cfg.model} ({cfg.variant}) on {cfg.dataset}: test accuracy "
              f"{r.test_accuracy:.4f} in {r.seconds:.1f} s -> {r.model_path}")
    return 0
