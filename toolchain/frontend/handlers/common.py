"""Helpers shared by the layer handlers: one input, accumulator bounds, activations."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.lowering import Lowering, Pending, Quant, Raw, Value
from toolchain.frontend.quantizers import ActFormat, act_format

QUANTIZER_CLASSES = ("quantized_relu", "quantized_bits", "ternary", "stochastic_ternary",
                     "binary", "quantized_po2", "quantized_relu_po2", "quantized_tanh",
                     "quantized_sigmoid", "quantized_ulaw", "bernoulli", "stochastic_binary",
                     "quantized_hswish")


def _one(layer: Any, args: list[Value]) -> Value:
    if len(args) != 1:
        raise StqError(f"layer '{layer.name}' ({type(layer).__name__}) expects one input, "
                       f"got {len(args)}")
    return args[0]


def _bounds(weights_oc_flat: np.ndarray, x_lo: int, x_hi: int) -> np.ndarray:
    """Worst-case |accumulator| per output channel (rows: output channels)."""
    w = weights_oc_flat.astype(np.int64)
    pos = np.where(w > 0, w, 0).sum(axis=1)
    neg = np.where(w < 0, w, 0).sum(axis=1)
    hi = pos * x_hi + neg * x_lo
    lo = pos * x_lo + neg * x_hi
    return np.maximum(np.abs(hi), np.abs(lo)).astype(np.float64)


def _check_acc(layer: str, bounds: np.ndarray) -> None:
    worst = float(np.max(bounds)) if bounds.size else 0.0
    if worst > 2**31 - 1:
        raise StqError(f"layer '{layer}': the accumulator can reach {int(worst)} for the "
                       "declared weight and input ranges, which overflows int32; use fewer "
                       "input bits or split the layer")


def _activation(low: Lowering, layer: Any, value: Value, act: Any) -> Value:
    """Apply a layer's activation argument (a QKeras quantizer or a Keras function)."""
    if act is None:
        return value
    if type(act).__name__ in QUANTIZER_CLASSES:
        return _apply_quantizer(low, layer.name, value, act_format(layer.name, act))
    name = getattr(act, "__name__", str(act))
    if name == "linear":
        return value
    if name == "relu":
        if isinstance(value, Pending):
            value.relu = True
            return value
        raise StqError(f"layer '{layer.name}': relu on an already quantized tensor is not "
                       "supported; use quantized_relu on the producing layer")
    if name == "softmax":
        low.output_info = {"activation": "softmax"}
        low.softmax_layers.add(layer.name)
        return value
    raise StqError(f"layer '{layer.name}': activation {name!r} is not supported (linear, relu, "
                   "softmax at the output, or a QKeras activation quantizer)")


def _apply_quantizer(low: Lowering, layer: str, value: Value, fmt: ActFormat) -> Value:
    if isinstance(value, Pending):
        return low.finalize(value, fmt)
    if isinstance(value, Raw):
        if low.input is not None:
            raise StqError(f"layer '{layer}': the model input is quantized twice")
        t = low.new_tensor("input", value.input_shape, fmt.qmin, fmt.qmax, fmt.step)
        low.input = t.name
        low.input_format = fmt.to_json()
        return Quant(t.name, value.shape)
    t = low.tensors[value.tensor]
    same_grid = t.scale == fmt.step and fmt.qmin <= t.qmin and t.qmax <= fmt.qmax
    if same_grid:
        return value
    raise StqError(f"layer '{layer}': re-quantizing an already quantized tensor "
                   f"(step {t.scale:g} -> {fmt.step:g}) is not supported; quantize the producing "
                   "layer's output directly")


def _named(name: str) -> Any:
    def fn() -> None:
        return None

    fn.__name__ = name
    return fn


