"""The reference operators: each IR op computed exactly (int64), as docs/semantics.md says.

Every value carries a leading batch axis: ``run_node`` computes one node for N inputs at once
(what black-box attacks need: thousands of queries a second). Convolutions and dense layers
are BLAS matmuls in float32 or float64 when every partial sum provably stays below 2**24 or
2**53 (bounded per node by the input dtype's range, the largest weight and the sum's length),
so every value is an exact integer; otherwise, and everywhere else, int64. ``tfl_*`` nodes run
one input at a time.

Those matmuls run on one BLAS thread: numpy's OpenBLAS (0.3.23) thread pool was seen to hang
for good (the caller spinning in sched_yield, its workers asleep) in a process that also runs
board threads and QEMU children; the reference's matrices are small, so a single thread costs
little. ``_single_thread_blas`` sets that once, for the BLAS libraries loaded by then."""

from __future__ import annotations

import functools
import math

import numpy as np

from toolchain.errors import StqError
from toolchain.frontend.quantizers import DTYPE_RANGE
from toolchain.ir.graph import TFLITE_OPS, Graph, Node
from toolchain.ir.requant import rhe_shift
from toolchain.reference.tflite_ops import run_tflite_node

NP_DTYPE = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32}
EXACT_F32, EXACT_F64 = 2 ** 24, 2 ** 53


@functools.cache
def _single_thread_blas() -> object:
    """Limit the loaded BLAS libraries (numpy's OpenBLAS) to one thread, once per process."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=512)
def _window_index(in_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                  pad: tuple[int, ...]) -> tuple[np.ndarray, int, int]:
    """For inputs (H, W, C) flattened with one fill value appended at index H*W*C: the index of
    every window element, (OH*OW, KH*KW*C), padding pointing at the fill; and OH, OW."""
    h, w, c = in_shape
    kh, kw = kernel
    sh, sw = stride
    t, b, left, r = pad
    oh, ow = (h + t + b - kh) // sh + 1, (w + left + r - kw) // sw + 1
    ax = np.ix_(range(oh), range(ow), range(kh), range(kw), range(c))  # broadcastable axes
    rows = ax[0] * sh + ax[2] - t
    cols = ax[1] * sw + ax[3] - left
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = (rows * w + cols) * c + ax[4]
    idx = np.where(np.broadcast_to(inside, flat.shape), flat, h * w * c)
    idx = idx.reshape(oh * ow, kh * kw * c)
    idx.flags.writeable = False  # shared by every call (lru_cache)
    return idx, oh, ow


def _patches(x: np.ndarray, node: Node, fill: int = 0) -> np.ndarray:
    """Windows of x (N, H, W, C) as (N, OH, OW, KH, KW, C), with explicit padding by ``fill``."""
    kh, kw = node.attrs.get("kernel", node.attrs.get("pool"))
    idx, oh, ow = _window_index(tuple(x.shape[1:]), (kh, kw), tuple(node.attrs["stride"]),
                                tuple(node.attrs["pad"]))
    n = len(x)
    flat = np.concatenate([x.reshape(n, math.prod(x.shape[1:])),
                           np.full((n, 1), fill, x.dtype)], axis=1)
    return flat[:, idx].reshape(n, oh, ow, kh, kw, x.shape[3])


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact int64 ``a @ b`` of integer arrays: through float32 or float64 (BLAS) when no
    partial sum can reach 2**24 or 2**53 (bounded by a's dtype range and b's values), else in
    int64."""
    info = np.iinfo(a.dtype)
    amax = max(abs(int(info.min)), abs(int(info.max)))
    bmax = max(abs(int(b.min(initial=0))), abs(int(b.max(initial=0))))
    bound = amax * bmax * max(1, a.shape[-1])
    for dtype, limit in ((np.float32, EXACT_F32), (np.float64, EXACT_F64)):
        if bound < limit:
            _single_thread_blas()
            return (a.astype(dtype) @ b.astype(dtype)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def _requant(node: Node, accs: list[np.ndarray]) -> np.ndarray:
    v = accs[0].astype(np.int64) * node.arrays["mult"].astype(np.int64)
    if len(accs) == 2:
        v = v + accs[1].astype(np.int64) * node.arrays["mult2"].astype(np.int64)
    v = v + node.arrays["offset"].astype(np.int64)
    q = rhe_shift(v, node.arrays["shift"])
    lo, hi = node.attrs["clamp"]
    return np.clip(q, lo, hi)


def _accumulate(g: Graph, node: Node, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The exact integer inputs of the node's requantization, each (N, *output shape):
    [acc] or [acc, second]."""
    xs = [env[name] for name in node.inputs]  # int8 / uint8 / int32, widened where used
    n = len(xs[0])
    if node.op in ("conv2d", "depthwise_conv2d"):
        p = _patches(xs[0].reshape(n, *node.attrs["in_shape"]), node)
        w = node.arrays["weights"]
        oh, ow = p.shape[1:3]
        if node.op == "conv2d":
            acc = _matmul(p.reshape(n * oh * ow, math.prod(p.shape[3:])),
                          w.reshape(w.shape[0], -1).T)
            acc = acc.reshape(n, oh, ow, w.shape[0])
        else:
            acc = np.einsum("nhwijc,ijc->nhwc", p.astype(np.int64), w.astype(np.int64))
    elif node.op == "dense":
        acc = _matmul(xs[0].reshape(n, math.prod(xs[0].shape[1:])), node.arrays["weights"].T)
    elif node.op == "avgpool":
        acc = _patches(xs[0].reshape(n, *node.attrs["in_shape"]), node).sum(
            axis=(3, 4), dtype=np.int64)
    elif node.op == "add":
        acc = xs[0].astype(np.int64)
    else:
        raise StqError(f"layer '{node.name}': op {node.op} has no requantization")
    return [acc] + ([xs[1].astype(np.int64).reshape(acc.shape)] if len(xs) == 2 else [])


def run_node(g: Graph, node: Node, env: dict[str, np.ndarray]) -> np.ndarray:
    """One node for a batch: ``env`` maps tensor names to (N, ...) arrays; returns (N, *shape)."""
    out = g.tensors[node.output]
    n = len(env[node.inputs[0]])
    if node.op in TFLITE_OPS:
        res = np.stack([run_tflite_node(g, node, {t: env[t][i] for t in node.inputs})
                        for i in range(n)]) if n else np.zeros((0, *out.shape), np.int64)
    elif node.op == "maxpool":
        x = env[node.inputs[0]].astype(np.int64).reshape(n, *node.attrs["in_shape"])
        res = _patches(x, node, fill=np.iinfo(np.int64).min).max(axis=(3, 4))
    else:
        res = _requant(node, _accumulate(g, node, env))
    res = res.reshape(n, *out.shape)
    lo, hi = DTYPE_RANGE[out.dtype]
    # a requantized result was clipped to its clamp: it is within the dtype if the clamp is
    clamp = None if node.op in ("maxpool", *TFLITE_OPS) else node.attrs.get("clamp")
    within = clamp is not None and lo <= clamp[0] and clamp[1] <= hi
    if not within and (res.min(initial=0) < lo or res.max(initial=0) > hi):
        raise StqError(f"layer '{node.name}': result outside {out.dtype} (converter bug)")
    return res.astype(NP_DTYPE[out.dtype])


def pre_rounding(g: Graph, node: Node, env: dict[str, np.ndarray]) -> np.ndarray:
    """Diagnostics: the node's value in output steps just before rounding and clamping,
    ``(acc*mult + res*mult2 + offset) / 2**shift`` (float64 of the exact int64 value), for one
    input (``env`` holds one input's tensors, without the batch axis)."""
    accs = _accumulate(g, node, {t: env[t][None] for t in node.inputs})
    v = accs[0] * node.arrays["mult"].astype(np.int64) + node.arrays["offset"].astype(np.int64)
    if len(accs) == 2:
        v = v + accs[1] * node.arrays["mult2"].astype(np.int64)
    return (v / np.exp2(node.arrays["shift"].astype(np.float64))).reshape(
        g.tensors[node.output].shape)
