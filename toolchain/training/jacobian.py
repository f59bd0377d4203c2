"""Jacobian regularization (Hoffman, Roberts and Yaida, 2019): random-projection estimates of
the Frobenius norm of the input-output Jacobian, and the exact norm for checks.

For an output z(x) in R^C and v uniform on the unit sphere of R^C,
``||J||_F^2 = C * E_v ||v^T J||^2`` where ``v^T J`` is the gradient of ``v . z`` with respect to
the input: one backward pass per projection. The regularizer adds
``lambda / 2 * sum_l w_l * ||J_l||_F^2`` (batch mean) for the network output and, optionally,
chosen layers' outputs, each with its own weight. Gradients pass through QKeras quantizers by
their straight-through estimators, as in training.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def projection_estimate(tape: tf.GradientTape, outputs: list[tf.Tensor], x: tf.Tensor,
                        weights: list[float], projections: int) -> tf.Tensor:
    """Weighted sum over outputs of the estimated squared Frobenius norm (batch mean).

    ``tape`` must be persistent and have watched ``x`` while ``outputs`` were computed.
    """
    total = tf.constant(0.0)
    batch = tf.cast(tf.shape(x)[0], tf.float32)
    for out, w in zip(outputs, weights, strict=True):
        with tape:  # record the flattening too, so the gradient reaches x
            flat = tf.reshape(out, (tf.shape(out)[0], -1))
        dim = tf.cast(tf.shape(flat)[1], tf.float32)
        for _ in range(projections):
            v = tf.random.normal(tf.shape(flat))
            v = v / tf.norm(v, axis=1, keepdims=True)
            with tape:
                proj = tf.reduce_sum(flat * tf.stop_gradient(v))
            g = tape.gradient(proj, x)
            total += w * dim * tf.reduce_sum(tf.square(g)) / batch / projections
    return total


def exact_frobenius_sq(fn: Any, x: tf.Tensor) -> tf.Tensor:
    """Exact batch-mean ||d fn(x) / dx||_F^2 (for checks and for measuring trained models)."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = fn(x)
        flat = tf.reshape(out, (tf.shape(out)[0], -1))
    jac = tape.batch_jacobian(flat, x)
    return tf.reduce_mean(tf.reduce_sum(tf.square(tf.reshape(jac, (tf.shape(jac)[0], -1))),
                                        axis=1))


def measured_norm(model: Any, x: Any, batch: int = 64) -> float:
    """Mean Frobenius norm ||J||_F of the pre-softmax output of a trained model (inference)."""
    import numpy as np

    pre = pre_softmax(model)
    vals = []
    for i in range(0, len(x), batch):
        xb = tf.constant(x[i:i + batch])
        with tf.GradientTape() as tape:
            tape.watch(xb)
            out = pre(xb, training=False)
        jac = tape.batch_jacobian(out, xb)
        vals.append(np.sqrt(np.sum(np.square(jac.numpy().reshape(len(xb), -1)), axis=1)))
    return float(np.mean(np.concatenate(vals)))


def pre_softmax(model: Any) -> Any:
    """The model up to its logits (the input of a final Softmax), or the model itself."""
    last = model.layers[-1]
    if type(last).__name__ == "Softmax" or getattr(getattr(last, "activation", None),
                                                   "__name__", "") == "softmax":
        return tf.keras.Model(model.input, last.input)
    return model
