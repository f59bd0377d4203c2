"""The reference of the ``tfl_*`` IR ops: TFLite's int8 reference kernels (BUILTIN_REF),
computed exactly from the parameters the converter stored (docs/semantics.md, TFLite section).

Products are summed in float64 where that is exact (every |sum| < 2**53), so BLAS does the
convolutions; everything else is int64."""

from __future__ import annotations

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.graph import Graph, Node
from toolchain.ir.tflite_params import ADD_LEFT_SHIFT
from toolchain.reference.gemmlowp import (
    exp_on_negative_values_q5,
    mbqm,
    rdbp,
    reciprocal_q12,
    srdhm,
    trunc_div,
    wrap32,
)


def _windows(x: np.ndarray, a: dict, fill: int, kernel: str) -> np.ndarray:
    """(OH, OW, KH, KW, C) view of the windows of x (H, W, C), padded with ``fill``."""
    kh, kw = a[kernel]
    sh, sw = a["stride"]
    dh, dw = a.get("dilation", (1, 1))
    t, b, left, r = a["pad"]
    xp = np.pad(x, ((t, b), (left, r), (0, 0)), constant_values=fill)
    oh = (xp.shape[0] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[1] - (kw - 1) * dw - 1) // sw + 1
    s0, s1, s2 = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (oh, ow, kh, kw, xp.shape[2]), (s0 * sh, s1 * sw, s0 * dh, s1 * dw, s2),
        writeable=False)


def _requant(n: Node, acc: np.ndarray) -> np.ndarray:
    acc = acc + n.arrays["bias"].astype(np.int64)
    y = mbqm(acc, n.arrays["mult"], n.arrays["shift"]) + n.attrs["out_zp"]
    return np.clip(y, *n.attrs["clamp"])


def _conv(n: Node, x: np.ndarray) -> np.ndarray:
    p = _windows(x.reshape(n.attrs["in_shape"]) - n.attrs["in_zp"], n.attrs, 0, "kernel")
    w = n.arrays["weights"]
    oh, ow = p.shape[:2]
    acc = p.reshape(oh * ow, -1).astype(np.float64) @ \
        w.reshape(w.shape[0], -1).T.astype(np.float64)
    return _requant(n, np.rint(acc).astype(np.int64).reshape(oh, ow, -1))


def _depthwise(n: Node, x: np.ndarray) -> np.ndarray:
    xs = np.repeat(x.reshape(n.attrs["in_shape"]) - n.attrs["in_zp"],
                   n.attrs["depth_multiplier"], axis=-1)  # channel ic*dm+m reads ic
    p = _windows(xs, n.attrs, 0, "kernel")
    return _requant(n, np.einsum("hwijc,ijc->hwc", p, n.arrays["weights"].astype(np.int64)))


def _fully_connected(n: Node, x: np.ndarray) -> np.ndarray:
    xv = (x.reshape(-1) - n.attrs["in_zp"]).astype(np.float64)
    acc = n.arrays["weights"].astype(np.float64) @ xv
    return _requant(n, np.rint(acc).astype(np.int64))


def _add(n: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m, s = n.arrays["mult"], n.arrays["shift"]
    v1 = mbqm((a - n.attrs["in_zp"]) << ADD_LEFT_SHIFT, m[0], s[0])
    v2 = mbqm((b.reshape(a.shape) - n.attrs["in2_zp"]) << ADD_LEFT_SHIFT, m[1], s[1])
    y = mbqm(wrap32(v1 + v2), m[2], s[2]) + n.attrs["out_zp"]
    return np.clip(y, *n.attrs["clamp"])


def _avgpool(n: Node, x: np.ndarray) -> np.ndarray:
    x = x.reshape(n.attrs["in_shape"])
    total = _windows(x, n.attrs, 0, "pool").sum(axis=(2, 3))
    ones = np.ones(x.shape[:2] + (1,), dtype=np.int64)
    cnt = _windows(ones, n.attrs, 0, "pool").sum(axis=(2, 3))  # in-image taps only
    half = cnt // 2
    avg = np.where(total > 0, trunc_div(total + half, cnt), trunc_div(total - half, cnt))
    return np.clip(avg, *n.attrs["clamp"])


def _maxpool(n: Node, x: np.ndarray) -> np.ndarray:
    p = _windows(x.reshape(n.attrs["in_shape"]), n.attrs, -(1 << 40), "pool")
    return np.clip(p.max(axis=(2, 3)), *n.attrs["clamp"])


def _mean(n: Node, x: np.ndarray) -> np.ndarray:
    h, w, c = n.attrs["in_shape"]
    total = x.reshape(h * w, c).sum(axis=0)
    y = mbqm(wrap32(total - n.attrs["in_zp"] * h * w), n.arrays["mult"][0],
             n.arrays["shift"][0]) + n.attrs["out_zp"]
    return np.clip(y, -128, 127)


def _pad(n: Node, x: np.ndarray) -> np.ndarray:
    t, b, left, r = n.attrs["pad"]
    return np.pad(x.reshape(n.attrs["in_shape"]), ((t, b), (left, r), (0, 0)),
                  constant_values=n.attrs["value"])


def _softmax(g: Graph, n: Node, x: np.ndarray) -> np.ndarray:
    depth = g.tensors[n.output].shape[-1]
    x = x.reshape(-1, depth)
    diff = x - x.max(axis=1, keepdims=True)
    valid = diff >= n.attrs["diff_min"]
    scaled = srdhm(wrap32(diff << int(n.arrays["shift"][0])), n.arrays["mult"][0])
    e = np.where(valid, exp_on_negative_values_q5(scaled), 0)
    total = wrap32(np.where(valid, rdbp(e, 12), 0).sum(axis=1, keepdims=True))
    scale, bits = reciprocal_q12(total)
    y = np.clip(rdbp(srdhm(scale, e), bits + 31 - 8) - 128, -128, 127)
    return np.where(valid, y, -128)


def _requantize(n: Node, x: np.ndarray) -> np.ndarray:
    y = mbqm(x - n.attrs["in_zp"], n.arrays["mult"][0], n.arrays["shift"][0])
    return np.clip(y + n.attrs["out_zp"], *n.attrs["clamp"])


def run_tflite_node(g: Graph, n: Node, env: dict[str, np.ndarray]) -> np.ndarray:
    """The int64 result of one tfl_* node (shape of its output tensor)."""
    xs = [env[t].astype(np.int64) for t in n.inputs]
    simple = {"tfl_conv2d": _conv, "tfl_depthwise_conv2d": _depthwise,
              "tfl_fully_connected": _fully_connected, "tfl_avgpool": _avgpool,
              "tfl_maxpool": _maxpool, "tfl_mean": _mean, "tfl_pad": _pad,
              "tfl_requantize": _requantize}
    if n.op in simple:
        y = simple[n.op](n, xs[0])
    elif n.op == "tfl_add":
        y = _add(n, xs[0], xs[1])
    elif n.op == "tfl_softmax":
        y = _softmax(g, n, xs[0])
    else:  # pragma: no cover - Node validates op names
        raise StqError(f"layer '{n.name}': no reference for op {n.op}")
    return np.asarray(y).reshape(g.tensors[n.output].shape)
