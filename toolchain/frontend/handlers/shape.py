"""Layers that change no values: Dropout (dropped), Flatten / Reshape (free in HWC order),
ZeroPadding2D (folded into the next conv)."""

from __future__ import annotations

from typing import Any

from toolchain.errors import StqError
from toolchain.frontend.handlers.common import (
    _one,
)
from toolchain.frontend.lowering import Lowering, Pending, Quant, Raw, Value, _hwc
from toolchain.frontend.registry import handles


@handles("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout")
def dropout(low: Lowering, layer: Any, args: list[Value]) -> Value:
    return _one(layer, args)


@handles("Flatten", "Reshape")
def reshape(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    shape = tuple(int(s) for s in layer.output_shape[1:])
    if isinstance(value, Quant):
        if any(value.pad):
            raise StqError(f"layer '{layer.name}' reshapes a zero-padded tensor")
        return Quant(value.tensor, shape)
    if isinstance(value, Pending):
        value.post.append(("reshape", {"shape": shape}))
        value.shape = shape
        return value
    # the float input, before its quantizer: a view of the model input (free in HWC order)
    return Raw(shape, value.input_shape)


@handles("ZeroPadding2D")
def zero_padding(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = low.quant_input(layer.name, _one(layer, args), "ZeroPadding2D")
    (t, b), (left, r) = layer.padding
    p = value.pad
    h, w, c = _hwc(layer.name, value.shape)
    return Quant(value.tensor, value.shape, (p[0] + t, p[1] + b, p[2] + left, p[3] + r))


