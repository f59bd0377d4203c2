"""Weighted layers: Conv2D, DepthwiseConv2D, Dense (float or QKeras, quantized weights)."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.handlers.common import (
    _activation,
    _bounds,
    _check_acc,
    _one,
)
from toolchain.frontend.lowering import Lowering, Pending, Quant, Value, _hwc, out_size
from toolchain.frontend.quantizers import quantize_kernel
from toolchain.frontend.registry import handles
from toolchain.ir.graph import Node


def _conv_common(layer: Any, x: Quant) -> tuple[tuple[int, int, int], tuple[int, int],
                                                  tuple[int, int, int, int], tuple[int, int]]:
    if tuple(layer.dilation_rate) != (1, 1):
        raise StqError(f"layer '{layer.name}': dilation_rate {layer.dilation_rate} is not "
                       "supported (only 1)")
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise StqError(f"layer '{layer.name}': data_format must be channels_last")
    h, w, c = _hwc(layer.name, x.shape)
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    zp = x.pad
    hp, wp = h + zp[0] + zp[1], w + zp[2] + zp[3]
    oh, ow, pads = out_size(layer.name, hp, wp, kh, kw, sh, sw, layer.padding)
    total = (pads[0] + zp[0], pads[1] + zp[1], pads[2] + zp[2], pads[3] + zp[3])
    return (h, w, c), (oh, ow), total, (kh, kw)


def _bias(layer: Any, channels: int) -> np.ndarray:
    if not getattr(layer, "use_bias", False) or layer.bias is None:
        return np.zeros(channels)
    bias = layer.bias.numpy()
    bq = getattr(layer, "bias_quantizer_internal", None)
    if bq is not None:
        import tensorflow as tf

        bias = np.asarray(bq(tf.constant(bias, dtype=tf.float32)))
    return np.asarray(bias, dtype=np.float64)


@handles("QConv2D", "Conv2D")
def conv2d(low: Lowering, layer: Any, args: list[Value]) -> Value:
    x = low.quant_input(layer.name, _one(layer, args), type(layer).__name__)
    if getattr(layer, "groups", 1) != 1:
        raise StqError(f"layer '{layer.name}': grouped convolution is not supported")
    (h, w, c), (oh, ow), pads, (kh, kw) = _conv_common(layer, x)
    kernel = layer.kernel.numpy()
    qw = quantize_kernel(layer.name, getattr(layer, "kernel_quantizer_internal", None), kernel)
    cout = kernel.shape[-1]
    weights = np.transpose(qw.ints, (3, 0, 1, 2))  # OHWI
    tin = low.tensors[x.tensor]
    bounds = _bounds(weights.reshape(cout, -1), tin.qmin, tin.qmax)
    _check_acc(layer.name, bounds)
    node = Node(layer.name, "conv2d", [x.tensor], "", {
        "weight_kind": qw.kind, "in_shape": [h, w, c], "kernel": [kh, kw],
        "stride": list(layer.strides), "pad": list(pads), "out_channels": cout},
        {"weights": weights.astype(np.int8)})
    p = Pending(node, (oh, ow, cout), [qw.scale * tin.scale], _bias(layer, cout), [bounds])
    return _activation(low, layer, p, layer.activation)


@handles("QDepthwiseConv2D", "DepthwiseConv2D")
def depthwise(low: Lowering, layer: Any, args: list[Value]) -> Value:
    x = low.quant_input(layer.name, _one(layer, args), type(layer).__name__)
    if int(layer.depth_multiplier) != 1:
        raise StqError(f"layer '{layer.name}': depth_multiplier {layer.depth_multiplier} is not "
                       "supported (only 1)")
    (h, w, c), (oh, ow), pads, (kh, kw) = _conv_common(layer, x)
    kernel = layer.depthwise_kernel.numpy()  # (kh, kw, c, 1)
    quantizer = getattr(layer, "depthwise_quantizer_internal", None)
    qw = quantize_kernel(layer.name, quantizer, kernel)
    weights = qw.ints[:, :, :, 0]  # (kh, kw, c)
    scale = np.broadcast_to(qw.scale, (c,)).astype(np.float64)
    tin = low.tensors[x.tensor]
    bounds = _bounds(np.transpose(weights, (2, 0, 1)).reshape(c, -1), tin.qmin, tin.qmax)
    _check_acc(layer.name, bounds)
    node = Node(layer.name, "depthwise_conv2d", [x.tensor], "", {
        "weight_kind": qw.kind, "in_shape": [h, w, c], "kernel": [kh, kw],
        "stride": list(layer.strides), "pad": list(pads), "out_channels": c},
        {"weights": weights.astype(np.int8)})
    p = Pending(node, (oh, ow, c), [scale * tin.scale], _bias(layer, c), [bounds])
    return _activation(low, layer, p, layer.activation)


@handles("QDense", "Dense")
def dense(low: Lowering, layer: Any, args: list[Value]) -> Value:
    x = low.quant_input(layer.name, _one(layer, args), type(layer).__name__)
    if len(x.shape) != 1:
        raise StqError(f"layer '{layer.name}': Dense on a {len(x.shape)}-D input {x.shape} is "
                       "not supported; add Flatten before it")
    kernel = layer.kernel.numpy()  # (cin, cout)
    qw = quantize_kernel(layer.name, getattr(layer, "kernel_quantizer_internal", None), kernel)
    cout = kernel.shape[-1]
    weights = np.ascontiguousarray(qw.ints.T)  # (cout, cin)
    tin = low.tensors[x.tensor]
    bounds = _bounds(weights, tin.qmin, tin.qmax)
    _check_acc(layer.name, bounds)
    node = Node(layer.name, "dense", [x.tensor], "", {
        "weight_kind": qw.kind, "in_features": int(kernel.shape[0]), "out_channels": cout},
        {"weights": weights.astype(np.int8)})
    p = Pending(node, (cout,), [qw.scale * tin.scale], _bias(layer, cout), [bounds])
    return _activation(low, layer, p, layer.activation)


