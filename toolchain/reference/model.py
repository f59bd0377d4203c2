"""Bit-exact NumPy reference of the integer IR: the host truth for every on-device check.

All arithmetic is exact (int64, or float32 / float64 where no sum can leave the exactly
representable integers; toolchain/reference/ops.py); each op follows docs/semantics.md.
``run`` returns the integer output of every tensor, keyed by tensor name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.graph import Graph
from toolchain.reference.ops import NP_DTYPE, run_node


def check_input(g: Graph, x: np.ndarray, batch: bool = False) -> np.ndarray:
    """One integer input of the input tensor's shape (a batch of them with ``batch``), checked."""
    t = g.tensors[g.input]
    x = np.asarray(x)
    shape = x.shape[1:] if batch else x.shape
    if shape != t.shape:
        raise StqError(f"input has shape {shape}; the model expects {t.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise StqError(f"input has dtype {x.dtype}; the model expects integer {t.dtype} "
                       "(quantize real inputs with toolchain.reference.quantize_input)")
    if x.size and (x.min() < t.qmin or x.max() > t.qmax):
        raise StqError(f"input values span [{x.min()}, {x.max()}]; the model's input range is "
                       f"[{t.qmin}, {t.qmax}]")
    return x.astype(NP_DTYPE[t.dtype])


def _forward(g: Graph, xs: np.ndarray) -> dict[str, np.ndarray]:
    env = {g.input: xs}
    for node in g.nodes:
        env[node.output] = run_node(g, node, env)
    return env


def run_batch(g: Graph, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Run N integer inputs (N, *input shape) at once; every tensor's values, (N, *shape)."""
    return _forward(g, check_input(g, xs, batch=True))


def run(g: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run one integer input (shape of the input tensor); return every tensor's values."""
    return {k: v[0] for k, v in _forward(g, check_input(g, x)[None]).items()}


def _per_input(g: Graph) -> int:
    """Elements a node's largest working array holds per input (im2col patches included)."""
    most = 1
    for node in g.nodes:
        size = int(g.tensors[node.output].size)
        kh, kw = node.attrs.get("kernel", node.attrs.get("pool", (1, 1)))
        shape = node.attrs.get("in_shape")
        most = max(most, size * kh * kw * (int(shape[-1]) if shape and node.op == "conv2d"
                                           else 1))
    return most


def predict(g: Graph, xs: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Integer outputs for a batch of integer inputs, shape (N, outputs); ``chunk`` inputs are
    computed together (by default as many as keep each working array near 2**24 elements)."""
    xs = np.asarray(xs)
    chunk = chunk or max(1, min(1024, (1 << 24) // _per_input(g)))
    size = int(g.tensors[g.output].size)
    outs = [run_batch(g, xs[i:i + chunk])[g.output].reshape(-1, size)
            for i in range(0, len(xs), chunk)]
    return np.concatenate(outs) if outs else np.zeros((0, size), NP_DTYPE[
        g.tensors[g.output].dtype])


def quantize_input(g: Graph, x_real: np.ndarray) -> np.ndarray:
    """Real-valued inputs (as the Keras model takes them) -> the model's integer inputs."""
    f = g.input_format
    v = np.asarray(x_real, dtype=np.float64) / f["step"]
    if "zero_point" in f:  # a TFLite model: QUANTIZE rounds half away from zero
        v = np.sign(v) * np.floor(np.abs(v) + 0.5) + f["zero_point"]
    else:
        v = np.round(v)
    return np.clip(v, f["qmin"], f["qmax"]).astype(NP_DTYPE[f["dtype"]])


def dequantize_output(g: Graph, y: np.ndarray) -> np.ndarray:
    t = g.tensors[g.output]
    return (np.asarray(y, dtype=np.float64) - t.zero_point) * t.scale


def load_artifact_dir(path: str | Path) -> Graph:
    """Load the artifact of an OUTDIR (or the artifact file itself); see toolchain/ir/outdir.py."""
    from toolchain.ir import artifact
    from toolchain.ir.outdir import resolve

    p = Path(path)
    return artifact.load(p if p.is_file() else resolve(p).artifact)
