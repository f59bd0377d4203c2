"""The integer IR: small typed records that validate themselves when built.

A graph is a list of nodes in execution order over named tensors. Every tensor is an integer
array in HWC (or flat) order with ``real = scale * (q - zero_point)``; the zero point is 0 for
every QKeras model and is written to the artifact only when it is not 0. Ops named ``tfl_*``
(TFLITE_OPS, from the TFLite frontend) have TFLite's int8 reference-kernel semantics, the
others stq's own. The exact semantics of each op are in docs/semantics.md and in
toolchain/reference/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from toolchain.errors import StqError

TFLITE_OPS = ("tfl_conv2d", "tfl_depthwise_conv2d", "tfl_fully_connected", "tfl_add",
              "tfl_avgpool", "tfl_maxpool", "tfl_mean", "tfl_pad", "tfl_softmax",
              "tfl_requantize")
OPS = ("conv2d", "depthwise_conv2d", "dense", "maxpool", "avgpool", "add") + TFLITE_OPS
DTYPES = ("int8", "uint8", "int32")
WEIGHT_KINDS = ("ternary", "binary", "int8")


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    qmin: int
    qmax: int
    zero_point: int = 0

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if self.dtype not in DTYPES:
            raise StqError(f"tensor '{self.name}': dtype {self.dtype!r} not in {DTYPES}")
        if any(s <= 0 for s in self.shape):
            raise StqError(f"tensor '{self.name}': shape {self.shape} has a non-positive size")
        if self.qmin > self.qmax:
            raise StqError(f"tensor '{self.name}': range [{self.qmin}, {self.qmax}] is empty")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "int32" else 1

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    def to_json(self) -> dict:
        d = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
             "scale": self.scale, "qmin": self.qmin, "qmax": self.qmax}
        if self.zero_point:  # absent means 0: artifacts written before zero points stay valid
            d["zero_point"] = self.zero_point
        return d

    @classmethod
    def from_json(cls, d: dict) -> Tensor:
        return cls(d["name"], tuple(d["shape"]), d["dtype"], float(d["scale"]), int(d["qmin"]),
                   int(d["qmax"]), int(d.get("zero_point", 0)))


@dataclass
class Node:
    """One integer operator. ``arrays`` hold weights and requantization parameters."""

    name: str
    op: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise StqError(f"layer '{self.name}': op {self.op!r} is not one of {OPS}")
        if self.op in ("conv2d", "depthwise_conv2d", "dense"):
            kind = self.attrs.get("weight_kind")
            if kind not in WEIGHT_KINDS:
                raise StqError(f"layer '{self.name}': weight_kind {kind!r} not in {WEIGHT_KINDS}")
            w = self.arrays.get("weights")
            if w is None:
                raise StqError(f"layer '{self.name}': missing weights")
            if kind == "ternary" and not np.isin(w, (-1, 0, 1)).all():
                raise StqError(f"layer '{self.name}': ternary weights hold values outside "
                               "{-1, 0, +1}")
            if kind == "binary" and not np.isin(w, (-1, 1)).all():
                raise StqError(f"layer '{self.name}': binary weights hold values outside "
                               "{-1, +1}")

    @property
    def has_residual(self) -> bool:
        return self.op not in ("add", "tfl_add") and len(self.inputs) == 2


@dataclass
class Graph:
    name: str
    tensors: dict[str, Tensor]
    nodes: list[Node]
    input: str
    output: str
    input_format: dict  # how real inputs become the input tensor (ActFormat.to_json())
    output_info: dict  # e.g. {"activation": "softmax"}
    options: dict = field(default_factory=lambda: {"packing": "2bit"})

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def macs(self) -> int:
        return sum(node_macs(self, n) for n in self.nodes)


def node_macs(g: Graph, n: Node) -> int:
    out = g.tensors[n.output]
    if n.op in ("conv2d", "tfl_conv2d"):
        kh, kw = n.attrs["kernel"]
        return out.size * kh * kw * g.tensors[n.inputs[0]].shape[-1]
    if n.op in ("depthwise_conv2d", "tfl_depthwise_conv2d"):
        kh, kw = n.attrs["kernel"]
        return out.size * kh * kw
    if n.op in ("dense", "tfl_fully_connected"):
        return out.size * g.tensors[n.inputs[0]].size
    return 0
