"""Lowering state: values flowing between Keras layers while the integer graph is built.

A Keras tensor becomes one of three values:

* :class:`Quant`: an integer IR tensor (real = scale * q), possibly viewed with another shape
  (Flatten / Reshape are free in HWC order) or with pending zero padding;
* :class:`Pending`: the integer accumulator of a conv / dense / pooling / add node whose real
  value is ``sum_i a_i[c] * acc_i + b[c]``: batch norm folds into ``a``/``b``, a residual add
  appends an input, and the next quantizer turns it into requantization parameters;
* :class:`Raw`: the float model input, before its input quantizer, possibly viewed with
  another shape (a Flatten / Reshape before the quantizer is free in HWC order too: the input
  tensor keeps the model's input shape, the quantized value is a view of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.quantizers import DTYPE_RANGE, ActFormat, dtype_for_range
from toolchain.ir.graph import Graph, Node, Tensor
from toolchain.ir.requant import requant_params


@dataclass
class Raw:
    shape: tuple[int, ...]  # the current view
    input_shape: tuple[int, ...] = ()  # the model input's own shape (default: ``shape``)

    def __post_init__(self) -> None:
        if not self.input_shape:
            self.input_shape = tuple(self.shape)


@dataclass
class Quant:
    tensor: str
    shape: tuple[int, ...]
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right (ZeroPadding2D)


@dataclass
class Pending:
    node: Node
    shape: tuple[int, ...]  # output shape
    a: list[np.ndarray]  # per input, per channel real scale
    b: np.ndarray  # per channel real offset
    bounds: list[np.ndarray]  # per input, per channel max |acc_i|
    relu: bool = False
    post: list[tuple[str, dict]] = field(default_factory=list)  # maxpool / reshape, after requant
    node_shape: tuple[int, ...] = ()  # the node's own output shape (before deferred ops)
    keras_name: str = ""  # the last Keras layer whose output this value is (diagnostics)

    def __post_init__(self) -> None:
        if not self.node_shape:
            self.node_shape = tuple(self.shape)

    @property
    def channels(self) -> int:
        return self.node_shape[-1]


Value = Raw | Quant | Pending


class Lowering:
    """Builds the integer graph; handlers call its methods."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.input: str | None = None
        self.input_format: dict | None = None
        self.output_info: dict = {"activation": "none"}
        self.softmax_layers: set[str] = set()

    # ---- tensors -------------------------------------------------------------------------
    def new_tensor(self, name: str, shape: tuple[int, ...], lo: int, hi: int,
                   scale: float) -> Tensor:
        base, k = name, 1
        while name in self.tensors:
            k += 1
            name = f"{base}_{k}"
        t = Tensor(name, shape, dtype_for_range(lo, hi), scale, lo, hi)
        self.tensors[name] = t
        return t

    def quant_input(self, layer: str, value: Value, what: str) -> Quant:
        """The integer tensor a consumer reads, or a clear error when there is none."""
        if isinstance(value, Quant):
            return value
        if isinstance(value, Raw):
            raise StqError(f"layer '{layer}' ({what}) reads the float model input; quantize the "
                           "input first with QActivation(quantized_bits(8, ...)) or "
                           "QActivation(quantized_relu(8, ...))")
        if _exact_sum(value):
            return self.finalize(value, None, exact=True)
        raise StqError(f"layer '{layer}' ({what}) reads the unquantized output of layer "
                       f"'{value.node.name}'; insert a QActivation between them")

    def note_keras_output(self, layer: str, value: Value, final: str | None = None) -> None:
        """Record which Keras layer's output first equals a node's output (for diagnostics:
        per-layer comparisons with QKeras); stored as the node attribute ``keras_output``."""
        if isinstance(value, Pending):
            if layer not in self.softmax_layers:
                value.keras_name = layer
            return
        tensor = final if final is not None else (
            value.tensor if isinstance(value, Quant) else None)
        for n in self.nodes:
            if n.output == tensor and "keras_output" not in n.attrs:
                n.attrs["keras_output"] = layer

    # ---- requantization ------------------------------------------------------------------
    def finalize(self, p: Pending, fmt: ActFormat | None, exact: bool = False) -> Quant:
        """Attach requantization to the pending node and emit it (plus deferred ops)."""
        n = p.node
        if fmt is not None:
            lo, hi, step = fmt.qmin, fmt.qmax, fmt.step
            if p.relu:
                lo = max(lo, 0)
            kind = "quantized"
        elif exact:
            # Exact integer sum (average pooling feeding a layer): identity requantization.
            lo, hi = _sum_range(p)
            step = float(p.a[0][0])
            kind = "exact"
        else:
            # Model output without a quantizer: int32 fixed point, 2**-F fine enough that the
            # rounding is far below float32 noise and the worst case still fits int32.
            reach = max(
                float(sum(abs(a[c]) * bd[c] for a, bd in zip(p.a, p.bounds, strict=True))
                      + abs(p.b[c])) for c in range(p.channels))
            frac = min(32, math.floor(math.log2(2.0**30 / max(reach, 1e-30))))
            step = 2.0**-frac
            lo, hi = DTYPE_RANGE["int32"]
            if p.relu:
                lo = 0
            kind = "fixed_point"
        out = self.new_tensor(n.name, p.node_shape, lo, hi, step)
        if kind == "exact":
            mults = [np.ones(p.channels, dtype=np.int32) for _ in p.a]
            shifts = np.zeros(p.channels, dtype=np.int32)
            offsets = np.zeros(p.channels, dtype=np.int64)
        else:
            mults, shifts, offsets = requant_params(p.a, p.b, step, p.bounds)
        n.arrays["mult"] = mults[0]
        if len(mults) == 2:
            n.arrays["mult2"] = mults[1]
        n.arrays["shift"] = shifts
        n.arrays["offset"] = offsets
        n.attrs["clamp"] = [int(lo), int(hi)]
        n.attrs["requant"] = kind
        n.output = out.name
        if kind != "quantized" and p.keras_name and all(op == "reshape" for op, _ in p.post):
            n.attrs["keras_output"] = p.keras_name
        self.nodes.append(n)
        value = Quant(out.name, p.node_shape)
        for op, attrs in p.post:
            if op == "maxpool":
                value = self.maxpool(attrs["layer"], value, attrs)
            else:
                value = Quant(value.tensor, attrs["shape"])
        return value

    def maxpool(self, layer: str, x: Quant, attrs: dict) -> Quant:
        t = self.tensors[x.tensor]
        h, w, c = _hwc(layer, x.shape)
        (ph, pw), (sh, sw), padding = attrs["pool"], attrs["strides"], attrs["padding"]
        oh, ow, pads = out_size(layer, h, w, ph, pw, sh, sw, padding)
        out = self.new_tensor(layer, (oh, ow, c), t.qmin, t.qmax, t.scale)
        self.nodes.append(Node(layer, "maxpool", [x.tensor], out.name,
                               {"in_shape": [h, w, c], "pool": [ph, pw], "stride": [sh, sw],
                                "pad": list(pads)}))
        return Quant(out.name, out.shape)

    def graph(self, output: Value) -> Graph:
        if isinstance(output, Pending):
            output = self.finalize(output, None)
        if not isinstance(output, Quant) or self.input is None or self.input_format is None:
            raise StqError("the model has no quantized input and integer output; nothing to "
                           "convert")
        if not self.nodes:
            raise StqError("the model has no conv, dense, pooling or add layer to convert")
        return Graph(self.name, self.tensors, self.nodes, self.input, output.tensor,
                     self.input_format, self.output_info)


def _exact_sum(p: Pending) -> bool:
    return (not p.relu and all(op == "reshape" for op, _ in p.post) and len(p.a) == 1
            and not np.any(p.b)
            and np.all(p.a[0] == p.a[0][0]))


def _sum_range(p: Pending) -> tuple[int, int]:
    bound = int(max(np.max(bd) for bd in p.bounds))
    return -bound, bound


def _hwc(layer: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise StqError(f"layer '{layer}' needs a 3-D (height, width, channels) input, got "
                       f"shape {shape}")
    return shape[0], shape[1], shape[2]


def out_size(layer: str, h: int, w: int, kh: int, kw: int, sh: int, sw: int,
             padding: str) -> tuple[int, int, tuple[int, int, int, int]]:
    """Output size and (top, bottom, left, right) padding, as TensorFlow computes them."""
    if padding == "valid":
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        pads = (0, 0, 0, 0)
    elif padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        th = max((oh - 1) * sh + kh - h, 0)
        tw = max((ow - 1) * sw + kw - w, 0)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        raise StqError(f"layer '{layer}': padding {padding!r} is not supported (valid, same)")
    if oh <= 0 or ow <= 0:
        raise StqError(f"layer '{layer}': window {kh}x{kw} does not fit input {h}x{w}")
    return oh, ow, pads
