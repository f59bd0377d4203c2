"""Pooling: max pooling (moved after its quantizer when it can be) and average pooling."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.handlers.common import (
    _one,
)
from toolchain.frontend.lowering import Lowering, Pending, Value, _hwc, out_size
from toolchain.frontend.registry import handles
from toolchain.ir.graph import Node


@handles("MaxPooling2D", "QMaxPooling2D")
def maxpool(low: Lowering, layer: Any, args: list[Value]) -> Value:
    value = _one(layer, args)
    attrs = {"layer": layer.name, "pool": tuple(layer.pool_size), "strides": tuple(layer.strides),
             "padding": layer.padding}
    if isinstance(value, Pending):
        # Quantization is monotonic, so max-pooling after requantization gives the same values.
        value.post.append(("maxpool", attrs))
        h, w, c = _hwc(layer.name, value.shape)
        oh, ow, _ = out_size(layer.name, h, w, *attrs["pool"], *attrs["strides"], layer.padding)
        value.shape = (oh, ow, c)
        return value
    x = low.quant_input(layer.name, value, "MaxPooling2D")
    if any(x.pad):
        raise StqError(f"layer '{layer.name}': ZeroPadding2D before max pooling is not supported")
    return low.maxpool(layer.name, x, attrs)


@handles("AveragePooling2D", "GlobalAveragePooling2D", "QAveragePooling2D",
         "QGlobalAveragePooling2D")
def avgpool(low: Lowering, layer: Any, args: list[Value]) -> Value:
    cls = type(layer).__name__
    x = low.quant_input(layer.name, _one(layer, args), cls)
    h, w, c = _hwc(layer.name, x.shape)
    if "Global" in cls:
        (ph, pw), (sh, sw), padding = (h, w), (h, w), "valid"
        keep = bool(getattr(layer, "keepdims", False))
    else:
        (ph, pw), (sh, sw), padding = tuple(layer.pool_size), tuple(layer.strides), layer.padding
        keep = True
    if padding != "valid":
        raise StqError(f"layer '{layer.name}': average pooling with padding '{padding}' divides "
                       "by a position-dependent count and is not supported; use 'valid'")
    if type(layer).__name__.startswith("Q"):
        raise StqError(f"layer '{layer.name}': {cls} (quantized average pooling) is not "
                       "supported; use the Keras layer followed by QActivation")
    oh, ow, _ = out_size(layer.name, h, w, ph, pw, sh, sw, "valid")
    tin = low.tensors[x.tensor]
    n = ph * pw
    bound = np.full(c, float(n * max(abs(tin.qmin), abs(tin.qmax))))
    node = Node(layer.name, "avgpool", [x.tensor], "", {
        "in_shape": [h, w, c], "pool": [ph, pw], "stride": [sh, sw], "pad": [0, 0, 0, 0],
        "out_channels": c})
    shape = (oh, ow, c) if keep else (c,)
    return Pending(node, shape, [np.full(c, tin.scale / n)], np.zeros(c), [bound])


