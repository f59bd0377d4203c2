"""Bit-exact NumPy reference of the integer IR: the host truth for every on-device check.

All arithmetic is int64 and exact; each op follows docs/semantics.md. ``run`` returns the
integer output of every tensor, keyed by tensor name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.errors import StqError
from toolchain.ir import Graph, Node
from toolchain.quantizers import DTYPE_RANGE
from toolchain.requant import rhe_shift

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
    if node.op == "maxpool":
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


def check_input(g: Graph, x: np.ndarray) -> np.ndarray:
    t = g.tensors[g.input]
    x = np.asarray(x)
    if x.shape != t.shape:
        raise StqError(f"input has shape {x.shape}; the model expects {t.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise StqError(f"input has dtype {x.dtype}; the model expects integer {t.dtype} "
                       "(quantize real inputs with toolchain.reference.quantize_input)")
    if x.min() < t.qmin or x.max() > t.qmax:
        raise StqError(f"input values span [{x.min()}, {x.max()}]; the model's input range is "
                       f"[{t.qmin}, {t.qmax}]")
    return x.astype(NP_DTYPE[t.dtype])


def run(g: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run one integer input (shape of the input tensor); return every tensor's values."""
    env = {g.input: check_input(g, x)}
    for node in g.nodes:
        env[node.output] = run_node(g, node, env)
    return env


def predict(g: Graph, xs: np.ndarray) -> np.ndarray:
    """Integer outputs for a batch of integer inputs, shape (N, outputs)."""
    return np.stack([run(g, x)[g.output].reshape(-1) for x in xs])


def quantize_input(g: Graph, x_real: np.ndarray) -> np.ndarray:
    """Real-valued inputs (as the Keras model takes them) -> the model's integer inputs."""
    f = g.input_format
    q = np.clip(np.round(np.asarray(x_real, dtype=np.float64) / f["step"]), f["qmin"], f["qmax"])
    return q.astype(NP_DTYPE[f["dtype"]])


def dequantize_output(g: Graph, y: np.ndarray) -> np.ndarray:
    return np.asarray(y, dtype=np.float64) * g.tensors[g.output].scale


def load_artifact_dir(path: str | Path) -> Graph:
    """Load OUTDIR/model.stqa (or an artifact file path)."""
    from toolchain import artifact

    p = Path(path)
    return artifact.load(p / "model.stqa" if p.is_dir() else p)
