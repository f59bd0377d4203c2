"""Probe models for the converter tests: the zoo topologies with randomized batch-norm statistics
and biases, so every requantization path sees non-trivial scales, offsets and negative gammas.

The ``probe_*`` topologies cover each converter path (plain CNN, residual add,
depthwise-separable, dense-only, mixed int8/ternary) on the same 8x8 digits input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from toolchain.training.zoo import ACT_Q, INPUT_Q, INT8_W, TERNARY, _qk, digits


def probe_residual() -> Any:
    """Residual block with the add fused into the second conv, plus a standalone Add."""
    tf, qk = _qk()
    L = tf.keras.layers
    inp = L.Input((8, 8, 1))
    x = qk.QActivation(INPUT_Q)(inp)
    x = qk.QConv2D(8, 3, padding="same", kernel_quantizer=TERNARY, name="stem")(x)
    x = L.BatchNormalization()(x)
    s = qk.QActivation(ACT_Q, name="stem_q")(x)
    y = qk.QConv2D(8, 3, padding="same", kernel_quantizer=TERNARY, use_bias=False)(s)
    y = L.BatchNormalization()(y)
    y = qk.QActivation(ACT_Q)(y)
    y = qk.QConv2D(8, 3, padding="same", kernel_quantizer=TERNARY, use_bias=False)(y)
    y = L.BatchNormalization()(y)
    x = L.Add(name="fused_add")([y, s])
    r = qk.QActivation(ACT_Q, name="res_q")(x)
    z = qk.QConv2D(8, 1, kernel_quantizer=TERNARY, activation=ACT_Q, name="side")(r)
    x = L.Add(name="plain_add")([r, z])
    x = qk.QActivation("quantized_relu(5,3)")(x)
    x = L.AveragePooling2D(2)(x)
    x = qk.QActivation(ACT_Q)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = qk.QDense(10, kernel_quantizer=TERNARY)(x)
    return tf.keras.Model(inp, x, name="probe_residual")


def probe_depthwise() -> Any:
    """Depthwise-separable blocks (the DS-CNN pattern) with zero padding and strides, a max
    pooling placed before its quantizer, and Reshape/Flatten after global pooling."""
    tf, qk = _qk()
    L = tf.keras.layers
    inp = L.Input((8, 8, 1))
    x = qk.QActivation(INPUT_Q)(inp)
    x = qk.QConv2D(16, 3, strides=1, padding="same", kernel_quantizer=INT8_W)(x)
    x = L.BatchNormalization()(x)
    x = L.MaxPooling2D(2, strides=1, padding="same", name="pool_before_q")(x)  # deferred
    x = qk.QActivation(ACT_Q)(x)
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = qk.QDepthwiseConv2D(3, strides=2, padding="valid", depthwise_quantizer=TERNARY)(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation(ACT_Q)(x)
    x = qk.QConv2D(24, 1, kernel_quantizer=TERNARY, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation(ACT_Q)(x)
    x = qk.QDepthwiseConv2D(3, padding="same", depthwise_quantizer="ternary(alpha='auto')")(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation("quantized_bits(6,2,1)")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Reshape((1, 1, 24))(x)
    x = L.Flatten()(x)
    x = qk.QDense(10, kernel_quantizer=INT8_W)(x)
    x = L.Activation("softmax")(x)
    return tf.keras.Model(inp, x, name="probe_depthwise")


def probe_dense() -> Any:
    """Dense-only network (binary and ternary weights, QBatchNormalization), Sequential API."""
    tf, qk = _qk()
    L = tf.keras.layers
    return tf.keras.Sequential([
        L.Input((8, 8, 1)),
        qk.QActivation("quantized_relu(8,0)"),
        L.Flatten(),
        qk.QDense(48, kernel_quantizer="binary(alpha='auto_po2')", bias_quantizer=None),
        qk.QBatchNormalization(),
        qk.QActivation(ACT_Q),
        L.Dropout(0.1),
        qk.QDense(32, kernel_quantizer=TERNARY, activation="quantized_relu(3,1)"),
        qk.QDense(10, kernel_quantizer="ternary()"),
        L.Softmax(),
    ], name="probe_dense")


def probe_flatten_first() -> Any:
    """An MLP on images built the common way: Flatten (and a Reshape) before the input
    quantizer, then dense layers (free in HWC order: the input tensor stays 8x8x1)."""
    tf, qk = _qk()
    L = tf.keras.layers
    inp = L.Input((8, 8, 1))
    x = L.Reshape((4, 16))(inp)
    x = L.Flatten()(x)
    x = qk.QActivation(INPUT_Q)(x)
    x = qk.QDense(32, kernel_quantizer=INT8_W)(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation(ACT_Q)(x)
    x = qk.QDense(24, kernel_quantizer=TERNARY)(x)
    x = L.BatchNormalization()(x)
    x = qk.QActivation(ACT_Q)(x)
    x = qk.QDense(10, kernel_quantizer=INT8_W)(x)
    return tf.keras.Model(inp, x, name="probe_flatten_first")


PROBES: dict[str, Callable[[], Any]] = {
    "cnn": lambda: digits("stq"), "residual": probe_residual, "depthwise": probe_depthwise,
    "dense": probe_dense, "flatten_first": probe_flatten_first,
}


def randomized(name: str, seed: int = 0) -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = PROBES[name]()
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
