"""BatchNormalization / QBatchNormalization, folded into the pending requantization."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.handlers.common import (
    _one,
)
from toolchain.frontend.lowering import Lowering, Pending, Value
from toolchain.frontend.registry import handles


@handles("BatchNormalization", "QBatchNormalization")
def batchnorm(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    if not isinstance(value, Pending):
        raise StqError(f"layer '{layer.name}' (batch normalization) does not follow a conv, "
                       "dense or pooling layer, so it cannot be folded")
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    if axis not in (-1, len(layer.input_shape) - 1):
        raise StqError(f"layer '{layer.name}': batch normalization over axis {axis} is not "
                       "supported (only the channel axis)")
    import tensorflow as tf

    def param(attr: str, quant_attr: str, default: float) -> np.ndarray:
        var = getattr(layer, attr, None)
        if var is None:
            return np.full(value.channels, default)
        arr = var.numpy()
        q = getattr(layer, quant_attr, None)
        if q is not None and getattr(layer, quant_attr.replace("_internal", ""), None):
            arr = np.asarray(q(tf.constant(arr, dtype=tf.float32)))
        return np.asarray(arr, dtype=np.float64)

    gamma = param("gamma", "gamma_quantizer_internal", 1.0)
    beta = param("beta", "beta_quantizer_internal", 0.0)
    mean = param("moving_mean", "mean_quantizer_internal", 0.0)
    var = param("moving_variance", "variance_quantizer_internal", 1.0)
    # Same float32 arithmetic order as Keras' inference batch norm: x * inv + (beta - mean*inv).
    inv = (np.float32(1.0) / np.sqrt(var.astype(np.float32) + np.float32(layer.epsilon))
           ).astype(np.float64) * gamma
    if any(op == "maxpool" for op, _ in value.post) and np.any(inv <= 0):
        raise StqError(f"layer '{layer.name}': batch normalization with a negative scale after "
                       "max pooling cannot be folded; move the pooling after the activation")
    value.a = [a * inv for a in value.a]
    value.b = value.b * inv + (beta - mean * inv)
    return value


