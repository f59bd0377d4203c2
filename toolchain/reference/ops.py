"""The reference operators: each IR op computed exactly (int64), as docs/semantics.md says."""

from __future__ import annotations

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.quantizers import DTYPE_RANGE
from toolchain.ir.graph import TFLITE_OPS, Graph, Node
from toolchain.ir.requant import rhe_shift
from toolchain.reference.tflite_ops import run_tflite_node

NP_DTYPE = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32}


def _patches(x: np.ndarray, node: Node, fill: int = 0) -> np.ndarray:
    """Windows of x (H, W, C) as (OH, OW, KH, KW, C), with explicit padding."""
    kh, kw = node.attrs.get("kernel", node.attrs.get("pool"))
    sh, sw = node.attrs["stride"]
    t, b, left, r = node.attrs["pad"]
    xp = np.pad(x, ((t, b), (left, r), (0, 0)), constant_values=fill)
    oh = (xp.shape[0] - kh) // sh + 1
    ow = (xp.shape[1] - kw) // sw + 1
    s0, s1, s2 = xp.strides
    view = np.lib.stride_tricks.as_strided(
        xp, (oh, ow, kh, kw, xp.shape[2]), (s0 * sh, s1 * sw, s0, s1, s2), writeable=False)
    return view


def _requant(node: Node, accs: list[np.ndarray]) -> np.ndarray:
    v = accs[0].astype(np.int64) * node.arrays["mult"].astype(np.int64)
    if len(accs) == 2:
        v = v + accs[1].astype(np.int64) * node.arrays["mult2"].astype(np.int64)
    v = v + node.arrays["offset"].astype(np.int64)
    q = rhe_shift(v, node.arrays["shift"])
    lo, hi = node.attrs["clamp"]
    return np.clip(q, lo, hi)


def _accumulate(g: Graph, node: Node, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The exact integer inputs of the node's requantization: [acc] or [acc, second]."""
    xs = [env[name].astype(np.int64) for name in node.inputs]
    if node.op in ("conv2d", "depthwise_conv2d"):
        p = _patches(xs[0].reshape(node.attrs["in_shape"]), node)
        w = node.arrays["weights"].astype(np.int64)
        if node.op == "conv2d":
            oh, ow = p.shape[:2]
            acc = (p.reshape(oh * ow, -1) @ w.reshape(w.shape[0], -1).T).reshape(oh, ow, -1)
        else:
            acc = np.einsum("hwijc,ijc->hwc", p, w)
    elif node.op == "dense":
        acc = node.arrays["weights"].astype(np.int64) @ xs[0].reshape(-1)
    elif node.op == "avgpool":
        acc = _patches(xs[0].reshape(node.attrs["in_shape"]), node).sum(axis=(2, 3))
    elif node.op == "add":
        acc = xs[0]
    else:
        raise StqError(f"layer '{node.name}': op {node.op} has no requantization")
    return [acc] + ([xs[1].reshape(acc.shape)] if len(xs) == 2 else [])


def run_node(g: Graph, node: Node, env: dict[str, np.ndarray]) -> np.ndarray:
    out = g.tensors[node.output]
    if node.op in TFLITE_OPS:
        res = run_tflite_node(g, node, env)
    elif node.op == "maxpool":
        x = env[node.inputs[0]].astype(np.int64).reshape(node.attrs["in_shape"])
        res = _patches(x, node, fill=np.iinfo(np.int64).min).max(axis=(2, 3))
    else:
        res = _requant(node, _accumulate(g, node, env))
    res = res.reshape(out.shape)
    lo, hi = DTYPE_RANGE[out.dtype]
    if res.min(initial=0) < lo or res.max(initial=0) > hi:
        raise StqError(f"layer '{node.name}': result outside {out.dtype} (converter bug)")
    return res.astype(NP_DTYPE[out.dtype])


def pre_rounding(g: Graph, node: Node, env: dict[str, np.ndarray]) -> np.ndarray:
    """Diagnostics: the node's value in output steps just before rounding and clamping,
    ``(acc*mult + res*mult2 + offset) / 2**shift`` (float64 of the exact int64 value)."""
    accs = _accumulate(g, node, env)
    v = accs[0] * node.arrays["mult"].astype(np.int64) + node.arrays["offset"].astype(np.int64)
    if len(accs) == 2:
        v = v + accs[1] * node.arrays["mult2"].astype(np.int64)
    return (v / np.exp2(node.arrays["shift"].astype(np.float64))).reshape(
        g.tensors[node.output].shape)
