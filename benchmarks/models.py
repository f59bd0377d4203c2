"""The benchmark models, with batch-norm statistics calibrated on data (never the degenerate
untrained ones) and the integer inputs they are measured on.

* ``resnet8`` (ternary, 2-bit or ``resnet8_base3``), ``resnet8_int8``: calibrated on real CIFAR-10
  images (``--data-dir``, default ../shared/data/cifar10-subset) when present, else on
  smoothed pseudo-random images; measured on other images of the same source.
* ``dscnn`` (2-bit or ``dscnn_base3``): calibrated and measured on smoothed pseudo-random
  49x10 "MFCC" maps (no speech data on this machine).
* ``digits``: calibrated and measured on the bundled scikit-learn digits.

Every model is checked with toolchain.training.calibrate.check_non_degenerate before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolchain.ir.graph import Graph

# ../shared beside the checkout (as in CI)
CIFAR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
MODELS = ("resnet8", "resnet8_base3", "dscnn", "dscnn_base3", "resnet8_int8", "digits")


def _smooth_noise(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, *shape))
    for ax in (1, 2):  # a 3-tap box blur along height and width: image-like correlations
        x = (x + np.roll(x, 1, axis=ax) + np.roll(x, -1, axis=ax)) / 3
    return np.clip((x - 0.5) * 2.5 + 0.5, 0, 0.996).astype(np.float32)


def float_inputs(name: str, n_cal: int, n_eval: int, data_dir: Path | None = None
                 ) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration inputs, evaluation inputs, where they come from), real-valued."""
    if name.startswith("resnet8"):
        d = Path(data_dir) if data_dir is not None else CIFAR_DIR
        if d.exists():
            from toolchain.training import datasets

            ds = datasets.cifar10(d)
            return ds.x_train[:n_cal], ds.x_test[:n_eval], f"CIFAR-10 images from {d}"
        x = _smooth_noise(n_cal + n_eval, (32, 32, 3), 0)
        return x[:n_cal], x[n_cal:], "smoothed pseudo-random 32x32x3 images"
    if name.startswith("dscnn"):
        x = _smooth_noise(n_cal + n_eval, (49, 10, 1), 1)
        return x[:n_cal], x[n_cal:], "smoothed pseudo-random 49x10 maps"
    from toolchain.training import datasets

    ds = datasets.digits()
    return ds.x_train[:n_cal], ds.x_test[:n_eval], "scikit-learn digits"


def keras_model(name: str, seed: int = 0) -> Any:
    """The untrained zoo model, its weights drawn from a fixed seed (so the calibrated model,
    and every figure measured on it, is the same on every run)."""
    import tensorflow as tf

    from toolchain.training import zoo

    tf.keras.utils.set_random_seed(seed)

    if name == "resnet8_int8":
        return zoo.resnet8("int8")
    if name.startswith("resnet8"):
        return zoo.resnet8("stq")
    return zoo.dscnn("stq") if name.startswith("dscnn") else zoo.digits("stq")


def calibrated_graph(name: str, n_cal: int = 256, n_eval: int = 8,
                     data_dir: Path | None = None) -> tuple[Graph, np.ndarray, str]:
    """The converted, calibrated model ``name`` (one of MODELS), its integer evaluation inputs
    (checked non-degenerate: outputs vary, most activations of every layer non-zero) and where
    the inputs come from."""
    from toolchain.frontend.keras import convert_model
    from toolchain.reference import model as reference
    from toolchain.training.calibrate import calibrate_bn, check_non_degenerate

    x_cal, x_eval, source = float_inputs(name, n_cal, n_eval, data_dir)
    m = calibrate_bn(keras_model(name), x_cal)
    g = convert_model(m, name=name)
    if name.endswith("_base3"):
        g.options["packing"] = "base3"
    xs = reference.quantize_input(g, x_eval)
    check_non_degenerate(g, xs)
    return g, xs, source
