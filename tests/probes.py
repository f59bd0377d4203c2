"""Probe models for the converter tests: the zoo topologies with randomized batch-norm statistics
and biases, so every requantization path sees non-trivial scales, offsets and negative gammas."""

from __future__ import annotations

from typing import Any

import numpy as np


def randomized(name: str, seed: int = 0) -> Any:
    import tensorflow as tf

    from toolchain import zoo

    tf.keras.utils.set_random_seed(seed)
    model = zoo.PROBES[name]()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization) or type(
                layer).__name__ == "QBatchNormalization":
            c = layer.gamma.shape[0]
            sign = rng.choice([1.0, -1.0], c, p=[0.85, 0.15])
            layer.set_weights([rng.uniform(0.3, 2.0, c) * sign, rng.normal(0.3, 0.5, c),
                               rng.normal(0.0, 2.0, c), rng.uniform(0.5, 8.0, c)])
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            w = layer.get_weights()
            w[1] = rng.normal(0.0, 0.5, w[1].shape)
            layer.set_weights(w)
    return model
