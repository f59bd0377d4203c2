"""Batch-norm statistics calibrated on data, and the check that a model's integer activations are
not degenerate (all zero, or the same for every input).

An untrained zoo model keeps Keras' initial batch-norm statistics (mean 0, variance 1), which
with ternary weights drives most activations to zero after a few layers: a bit-exact check of
such a model compares zeros with zeros. ``calibrate_bn`` runs the float model on sample inputs
and sets each BatchNormalization's moving mean and variance from the activations it really
sees (layer by layer, so each uses the calibrated layers before it), with gamma and beta chosen
so that about 84 % of each channel's outputs are positive. ``check_non_degenerate`` then asserts
on the integer graph that outputs vary across inputs and most activations of every layer are
non-zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.graph import Graph


def calibrate_bn(model: Any, xs: np.ndarray, seed: int = 0) -> Any:
    """Set every BatchNormalization of ``model`` (in place) from its inputs on ``xs``: moving
    mean and variance observed per channel, gamma drawn in 0.6..1.2 and beta = gamma (so the
    normalized output is positive where the input is above mean - 1 std). Returns ``model``."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        sub = tf.keras.Model(model.inputs, layer.input)
        a = np.asarray(sub.predict(xs, verbose=0, batch_size=64), dtype=np.float64)
        axes = tuple(range(a.ndim - 1))
        mean, var = a.mean(axis=axes), a.var(axis=axes)
        c = mean.shape[0]
        gamma = rng.uniform(0.6, 1.2, c)
        beta = gamma * rng.uniform(0.8, 1.2, c)
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        values = {"gamma": gamma, "beta": beta, "moving_mean": mean,
                  "moving_variance": np.maximum(var, 1e-6)}
        layer.set_weights([values[n].astype(np.float32) for n in names])
    return model


def activity(g: Graph, xs: np.ndarray) -> dict[str, dict[str, float]]:
    """Per layer output on the integer inputs ``xs``: the fraction of non-zero values and the
    fraction of inputs whose output differs from the first input's."""
    from toolchain.reference import model as reference

    outs: dict[str, list[np.ndarray]] = {n.output: [] for n in g.nodes}
    for x in xs:
        env = reference.run(g, x)
        for t in outs:
            outs[t].append(np.asarray(env[t]).reshape(-1))
    res = {}
    for n in g.nodes:
        v = np.stack(outs[n.output])
        res[n.name] = {"nonzero": float((v != 0).mean()),
                       "varying": float((v != v[0]).any(axis=1).mean())}
    return res


def check_non_degenerate(g: Graph, xs: np.ndarray, min_nonzero: float = 0.5) -> dict:
    """Raise StqError unless the model output differs between inputs and at least
    ``min_nonzero`` of every layer's activations are non-zero on ``xs``; returns activity()."""
    if len(xs) < 2:
        raise StqError("check_non_degenerate needs at least 2 inputs")
    act = activity(g, xs)
    out = g.nodes[-1].name
    if act[out]["varying"] == 0.0:
        raise StqError(f"model {g.name}: output is the same for all {len(xs)} inputs")
    low = {k: round(v["nonzero"], 3) for k, v in act.items() if v["nonzero"] < min_nonzero}
    if low:
        raise StqError(f"model {g.name}: layers with fewer than {min_nonzero:.0%} non-zero "
                       f"activations on {len(xs)} inputs: {low}")
    return act
