"""Quantization-aware training of zoo models (QKeras straight-through gradients), with
per-layer Jacobian regularization and really stochastic ternary weights.

* ``stq`` / ``stq-jr`` variants train with the Keras learning phase set to 1 inside the training
  step, so QKeras' ``stochastic_ternary`` samples its weights (plain ``fit`` never does, see
  FACTS.md); evaluation and the saved model use the deterministic inference branch.
* Jacobian regularization (toolchain/jacobian.py) on the logits and, optionally, on chosen
  layers with their own weights; ``stq-jr`` turns it on by default.
* Reproducible (seeded); a CSV row per epoch is written as the epoch ends, the model is saved
  atomically, and a JSON summary records the configuration and the result.
"""

from __future__ import annotations

import csv
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.fsutil import atomic_path, ensure_writable_dir
from toolchain.training import datasets, zoo

DEFAULT_JR_LAMBDA = 0.002  # FACTS.md: cuts the digits Jacobian norm ~4x at little accuracy cost


@dataclass
class TrainConfig:
    model: str = "digits"
    variant: str = "stq"
    dataset: str | None = None  # default: the model's own dataset
    data_dir: str | None = None
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    jr_lambda: float | None = None  # default: DEFAULT_JR_LAMBDA for stq-jr, else 0
    jr_projections: int = 1
    jr_layers: dict[str, float] = field(default_factory=dict)  # layer name -> weight
    stochastic: bool = True  # sample stochastic_ternary weights while training
    int8_edges: bool = True
    limit: int | None = None  # use at most this many training examples (quick runs)
    bits: dict[str, int] = field(default_factory=dict)  # quanos: layer name -> 2, 4 or 8

    def resolved(self) -> TrainConfig:
        cfg = TrainConfig(**asdict(self))
        if cfg.model not in zoo.MODELS:
            raise StqError(f"unknown model {cfg.model!r}; available: "
                           f"{', '.join(sorted(zoo.MODELS))}")
        if cfg.variant not in zoo.VARIANTS:
            raise StqError(f"unknown variant {cfg.variant!r}; available: "
                           f"{', '.join(zoo.VARIANTS)}")
        cfg.dataset = cfg.dataset or zoo.DEFAULT_DATASET[cfg.model]
        cfg.data_dir = str(cfg.data_dir) if cfg.data_dir is not None else None
        if cfg.jr_lambda is None:
            cfg.jr_lambda = DEFAULT_JR_LAMBDA if cfg.variant == "stq-jr" else 0.0
        if cfg.jr_lambda < 0 or cfg.jr_projections < 1:
            raise StqError("--jr-lambda must be >= 0 and --jr-projections >= 1")
        if cfg.epochs < 1 or cfg.batch_size < 1:
            raise StqError("--epochs and --batch-size must be >= 1")
        return cfg


@dataclass
class TrainResult:
    model_path: str
    test_accuracy: float
    epochs: int
    seconds: float
    log_path: str
    jacobian_norm: float | None = None


def build_model(cfg: TrainConfig, input_shape: tuple[int, ...], classes: int) -> Any:
    extra = {"bits": cfg.bits} if cfg.variant == "quanos" else {}
    return zoo.MODELS[cfg.model](cfg.variant, input_shape=tuple(input_shape), classes=classes,
                                 int8_edges=cfg.int8_edges, **extra)


def train(cfg: TrainConfig, outdir: str | Path, progress: bool = True,
          dataset: datasets.Dataset | None = None, bars: bool | None = None) -> TrainResult:
    """Train and save; ``dataset`` overrides loading ``cfg.dataset`` (benchmarks, tests).

    ``progress`` prints one line per epoch; ``bars`` (default: ``progress``) draws a tqdm bar of
    the steps of each epoch on a terminal (toolchain/progress.py)."""
    import tensorflow as tf

    from toolchain.progress import bar as progress_bar
    from toolchain.training.jacobian import pre_softmax, projection_estimate

    cfg = cfg.resolved()
    outdir = Path(outdir)
    ensure_writable_dir(outdir)
    ds = dataset if dataset is not None else datasets.load(cfg.dataset, cfg.data_dir)
    xtr, ytr = ds.x_train, ds.y_train
    if cfg.limit:
        xtr, ytr = xtr[:cfg.limit], ytr[:cfg.limit]
    tf.keras.utils.set_random_seed(cfg.seed)
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    model = build_model(cfg, ds.x_train.shape[1:], ds.classes)
    logits = pre_softmax(model)
    try:
        extra = [model.get_layer(name).output for name in cfg.jr_layers]
    except ValueError as exc:
        raise StqError(f"--jr-layer: {exc}; layers: {[la.name for la in model.layers]}"
                       ) from None
    aux = tf.keras.Model(model.input, [logits.output, *extra])
    jr_weights = [1.0, *cfg.jr_layers.values()]
    steps = max(1, -(-len(xtr) // cfg.batch_size))
    schedule = tf.keras.optimizers.schedules.CosineDecay(cfg.learning_rate, cfg.epochs * steps)
    opt = tf.keras.optimizers.Adam(schedule)
    ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    lam = float(cfg.jr_lambda)

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            with tf.GradientTape(persistent=True) as jt:
                jt.watch(x)
                outs = aux(x, training=True)
            outs = outs if isinstance(outs, list) else [outs]
            loss = ce(y, outs[0])
            jr = tf.constant(0.0)
            if lam > 0:
                jr = projection_estimate(jt, outs, x, jr_weights, cfg.jr_projections)
                loss += lam / 2.0 * jr
            loss += sum(model.losses) if model.losses else 0.0
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(outs[0], 1, output_type=tf.int32),
                                                 tf.cast(y, tf.int32)), tf.float32))
        return loss, jr, correct

    @tf.function
    def predict_step(x: tf.Tensor) -> tf.Tensor:
        return logits(x, training=False)

    def evaluate(x: np.ndarray, y: np.ndarray) -> float:
        hits = 0
        for i in range(0, len(x), 256):
            hits += int(np.sum(np.argmax(predict_step(tf.constant(x[i:i + 256])), 1)
                               == y[i:i + 256]))
        return hits / len(x)

    stochastic = cfg.stochastic and cfg.variant in ("stq", "stq-jr")
    stem = f"{cfg.model}_{cfg.variant}"
    log_path = outdir / f"{stem}.log.csv"
    rng = np.random.default_rng(cfg.seed)
    start = time.time()
    fields = ["epoch", "loss", "jr", "train_accuracy", "test_accuracy", "seconds"]
    with open(log_path, "w", newline="") as logf:
        writer = csv.DictWriter(logf, fieldnames=fields)
        writer.writeheader()
        for epoch in range(1, cfg.epochs + 1):
            order = rng.permutation(len(xtr))
            bar = progress_bar(steps, f"epoch {epoch}/{cfg.epochs}",
                               progress if bars is None else bars, unit="step")
            tot_loss = tot_jr = tot_correct = 0.0
            for s in range(steps):
                idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                xb, yb = tf.constant(xtr[idx]), tf.constant(ytr[idx])
                with _learning_phase(1 if stochastic else 0):
                    loss, jr, correct = train_step(xb, yb)
                tot_loss += float(loss) * len(idx)
                tot_jr += float(jr) * len(idx)
                tot_correct += float(correct)
                bar.set_postfix(loss=f"{float(loss):.4f}", jr=f"{float(jr):.3g}", refresh=False)
                bar.update(1)
            bar.close()
            test_acc = evaluate(ds.x_test, ds.y_test)
            row = {"epoch": epoch, "loss": tot_loss / len(xtr), "jr": tot_jr / len(xtr),
                   "train_accuracy": tot_correct / len(xtr), "test_accuracy": test_acc,
                   "seconds": round(time.time() - start, 2)}
            writer.writerow(row)
            logf.flush()
            if progress:
                print(f"epoch {epoch}/{cfg.epochs}: loss {row['loss']:.4f} jr {row['jr']:.3g} "
                      f"train {row['train_accuracy']:.4f} test {test_acc:.4f}", flush=True)
    seconds = time.time() - start
    acc = evaluate(ds.x_test, ds.y_test)
    model_path = outdir / f"{stem}.h5"
    with atomic_path(model_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras: "HDF5 is legacy", QKeras objects
        h5 = tmp.with_suffix(".h5")
        model.save(str(h5))
        os.replace(h5, tmp)
    result = TrainResult(str(model_path), float(acc), cfg.epochs, seconds, str(log_path))
    with atomic_path(outdir / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps({"config": asdict(cfg), "result": asdict(result)}, indent=2))
    return result


class _learning_phase:  # noqa: N801 - reads as a context manager
    """Set the Keras learning phase (QKeras' stochastic quantizers read it) for a block."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __enter__(self) -> None:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.scope = tf.compat.v1.keras.backend.learning_phase_scope(self.value)
            self.scope.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.scope.__exit__(*exc)


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))
