"""Activation layers: QActivation (quantizers), Keras Activation / ReLU / Softmax."""

from __future__ import annotations

from typing import Any

from toolchain.errors import StqError
from toolchain.frontend.handlers.common import (
    _activation,
    _named,
    _one,
)
from toolchain.frontend.lowering import Lowering, Value
from toolchain.frontend.registry import handles


@handles("QActivation")
def q_activation(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    quantizer = getattr(layer, "quantizer", None)
    if quantizer is None or isinstance(quantizer, str):
        from qkeras.quantizers import get_quantizer

        quantizer = get_quantizer(layer.activation)
    return _activation(low, layer, value, quantizer)


@handles("Activation", "ReLU", "Softmax")
def keras_activation(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    cls = type(layer).__name__
    if cls == "Softmax":
        low.output_info = {"activation": "softmax"}
        low.softmax_layers.add(layer.name)
        return value
    if cls == "ReLU":
        if layer.max_value is not None or float(layer.negative_slope) != 0.0 or float(
                layer.threshold) != 0.0:
            raise StqError(f"layer '{layer.name}': ReLU with max_value/negative_slope/threshold "
                           "is not supported")
        return _activation(low, layer, value, _named("relu"))
    return _activation(low, layer, value, layer.activation)


