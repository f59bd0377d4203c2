"""Training of zoo models with quantization-aware training (QKeras straight-through gradients).

Reproducible (seeded), with a per-epoch log (CSV) written as training goes and the model saved
atomically. Note: QKeras' ``stochastic_ternary`` samples only when the Keras learning phase is
1, which ``fit`` does not set (see FACTS.md); plain ``fit`` trains the deterministic ternary
branch, which is also what inference uses.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolchain import datasets, zoo
from toolchain.errors import StqError
from toolchain.fsutil import atomic_path, ensure_writable_dir


@dataclass
class TrainConfig:
    model: str = "digits"
    variant: str = "stq"
    dataset: str = "digits"
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0


@dataclass
class TrainResult:
    model_path: str
    test_accuracy: float
    epochs: int
    seconds: float
    log_path: str


def build(cfg: TrainConfig, input_shape: tuple[int, ...], classes: int) -> Any:
    if cfg.model not in zoo.MODELS:
        raise StqError(f"unknown model {cfg.model!r}; available: {', '.join(sorted(zoo.MODELS))}")
    return zoo.MODELS[cfg.model](cfg.variant, input_shape=input_shape, classes=classes)


def train(cfg: TrainConfig, outdir: Path, progress: bool = True) -> TrainResult:
    import tensorflow as tf

    outdir = Path(outdir)
    ensure_writable_dir(outdir)
    ds = datasets.load(cfg.dataset)
    tf.keras.utils.set_random_seed(cfg.seed)
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    model = build(cfg, ds.x_train.shape[1:], ds.classes)
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stem = f"{cfg.model}_{cfg.variant}"
    log_path = outdir / f"{stem}.log.csv"
    schedule = tf.keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: cfg.learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / cfg.epochs)))
    callbacks: list[Any] = [tf.keras.callbacks.CSVLogger(str(log_path)), schedule]
    start = time.time()
    model.fit(ds.x_train, ds.y_train, validation_data=(ds.x_test, ds.y_test), epochs=cfg.epochs,
              batch_size=cfg.batch_size, verbose=2 if progress else 0, callbacks=callbacks,
              shuffle=True)
    seconds = time.time() - start
    _, acc = model.evaluate(ds.x_test, ds.y_test, verbose=0)
    model_path = outdir / f"{stem}.h5"
    with atomic_path(model_path) as tmp:
        model.save(str(tmp.with_suffix(".h5")))
        os.replace(tmp.with_suffix(".h5"), tmp)
    result = TrainResult(str(model_path), float(acc), cfg.epochs, seconds, str(log_path))
    with atomic_path(outdir / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps({"config": asdict(cfg), "result": asdict(result)}, indent=2))
    return result


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))
