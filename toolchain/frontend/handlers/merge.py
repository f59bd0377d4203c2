"""Add: fused into the producing conv as a residual, or a standalone add node."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.lowering import Lowering, Pending, Value
from toolchain.frontend.registry import handles
from toolchain.ir.graph import Node


@handles("Add")
def add(low: Lowering, layer: Any, args: list[Value]) -> Value:
    if len(args) != 2:
        raise StqError(f"layer '{layer.name}' (Add) has {len(args)} inputs; only 2 are supported")
    pend = [v for v in args if isinstance(v, Pending)]
    if len(pend) == 2:
        raise StqError(f"layer '{layer.name}' (Add) sums two unquantized branches "
                       f"('{args[0].node.name}', '{args[1].node.name}'); add a QActivation to "
                       "one of them")
    if len(pend) == 1:
        p = pend[0]
        other = args[1] if args[0] is p else args[0]
        r = low.quant_input(layer.name, other, "Add")
        fusable = (p.node.op in ("conv2d", "depthwise_conv2d", "dense") and not p.post
                   and not p.relu and len(p.a) == 1)
        if not fusable:
            raise StqError(f"layer '{layer.name}' (Add) cannot fuse into '{p.node.name}'; "
                           "add a QActivation before the Add")
        if tuple(r.shape) != tuple(p.shape):
            raise StqError(f"layer '{layer.name}' (Add): shapes {p.shape} and {r.shape} differ")
        t = low.tensors[r.tensor]
        p.node.inputs.append(r.tensor)
        p.a.append(np.full(p.channels, t.scale))
        p.bounds.append(np.full(p.channels, float(max(abs(t.qmin), abs(t.qmax)))))
        return p
    xs = [low.quant_input(layer.name, v, "Add") for v in args]
    if tuple(xs[0].shape) != tuple(xs[1].shape):
        raise StqError(f"layer '{layer.name}' (Add): shapes {xs[0].shape} and {xs[1].shape} "
                       "differ")
    ts = [low.tensors[x.tensor] for x in xs]
    c = xs[0].shape[-1]
    node = Node(layer.name, "add", [x.tensor for x in xs], "", {"out_channels": c})
    return Pending(node, xs[0].shape, [np.full(c, t.scale) for t in ts], np.zeros(c),
                   [np.full(c, float(max(abs(t.qmin), abs(t.qmax)))) for t in ts])
