"""A differentiable float twin of an integer graph, built from the IR alone, so that a model
without its training code (a converted .tflite) can be attacked white-box.

Each tensor is carried as its real value ``scale * (q - zero_point)``. Weights are dequantized
(per channel), each op computes in float32, and at every requantization the value is rounded to
the output's integer grid with a straight-through estimator (forward: round and clamp to the
node's range; backward: identity inside the range), so the forward pass tracks the integer
model closely (not bit-exactly: float sums and a float softmax) and the gradients flow. The
output is the logits: the input of a final softmax, else the dequantized output. Inputs are in
the model's real units (``input_format``: real = step * (q - zero_point))."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.graph import Graph, Node


def _ops() -> Any:
    import tensorflow as tf

    return tf


def _ste_quant(tf: Any, r: Any, scale: float, zp: int, lo: int, hi: int) -> Any:
    """Real r -> the nearest real value on the grid scale * (q - zp), q in [lo, hi]; identity
    gradient inside the range (straight through)."""
    q = r / scale + zp
    q = q + tf.stop_gradient(tf.round(q) - q)
    return (tf.clip_by_value(q, float(lo), float(hi)) - zp) * scale


def _pads(n: Node) -> list[list[int]]:
    t, b, left, r = n.attrs["pad"]
    return [[0, 0], [t, b], [left, r], [0, 0]]


def build_twin(g: Graph) -> Any:
    """A tf.keras Model: real input (N, *input shape) -> real logits (N, classes)."""
    tf = _ops()
    unsupported = [n.op for n in g.nodes if not n.op.startswith("tfl_")]
    if unsupported:
        raise StqError(f"the float twin covers tfl_* graphs (TFLite models); this graph has "
                       f"{sorted(set(unsupported))}: attack its Keras model instead")

    class Twin(tf.keras.layers.Layer):  # type: ignore[misc, name-defined]
        def call(self, x: Any) -> Any:
            return _forward(tf, g, x)

    shape = tuple(g.tensors[g.input].shape)
    inp = tf.keras.Input(shape)
    return tf.keras.Model(inp, Twin(name="integer_twin")(inp), name=f"{g.name}_twin")


def _forward(tf: Any, g: Graph, x: Any) -> Any:
    tin = g.tensors[g.input]
    env = {g.input: _ste_quant(tf, x, tin.scale, tin.zero_point, tin.qmin, tin.qmax)}
    logits = None
    for i, n in enumerate(g.nodes):
        out = g.tensors[n.output]
        xs = [env[t] for t in n.inputs]
        if n.op == "tfl_softmax" and i == len(g.nodes) - 1:
            logits = tf.reshape(xs[0], (-1, out.size))  # attack the softmax's input
        env[n.output] = _node(tf, g, n, xs)
    if logits is None:
        logits = tf.reshape(env[g.output], (-1, g.tensors[g.output].size))
    return logits


def _node(tf: Any, g: Graph, n: Node, xs: list[Any]) -> Any:
    a, out = n.attrs, g.tensors[n.output]
    src = g.tensors[n.inputs[0]]
    lo, hi = a.get("clamp", (-128, 127))
    if n.op in ("tfl_conv2d", "tfl_depthwise_conv2d", "tfl_fully_connected"):
        # real weight scale per channel from the multipliers' source: S_in * S_w / S_out is
        # M * 2^(s - 31); so S_w = M * 2^(s-31) * S_out / S_in (exact to float precision)
        m = n.arrays["mult"].astype(np.float64) * np.exp2(n.arrays["shift"].astype(np.float64)
                                                          - 31)
        ws = (m * out.scale / src.scale).astype(np.float32)
        bias = (n.arrays["bias"] * ws * src.scale).astype(np.float32)
        w = n.arrays["weights"].astype(np.float32)
        h = tf.reshape(xs[0], (-1, *a["in_shape"])) if "in_shape" in a else xs[0]
        if n.op == "tfl_conv2d":
            k = tf.constant(np.transpose(w, (1, 2, 3, 0)) * ws)  # HWIO
            y = tf.nn.conv2d(tf.pad(h, _pads(n)), k, a["stride"], "VALID",
                             dilations=a["dilation"])
        elif n.op == "tfl_depthwise_conv2d":
            kh, kw, oc = w.shape
            k = tf.constant((w * ws).reshape(kh, kw, oc // a["depth_multiplier"],
                                             a["depth_multiplier"]))
            y = tf.nn.depthwise_conv2d(tf.pad(h, _pads(n)), k, [1, *a["stride"], 1], "VALID",
                                       dilations=a["dilation"])
        else:
            y = tf.matmul(tf.reshape(h, (-1, src.size)), tf.constant((w * ws[:, None]).T))
        y = y + bias
    elif n.op == "tfl_add":
        y = xs[0] + tf.reshape(xs[1], tf.shape(xs[0]))
    elif n.op in ("tfl_avgpool", "tfl_maxpool"):
        h = tf.reshape(xs[0], (-1, *a["in_shape"]))
        pad = "VALID" if not any(a["pad"]) else "SAME"
        pool = tf.nn.avg_pool2d if n.op == "tfl_avgpool" else tf.nn.max_pool2d
        y = pool(h, a["pool"], a["stride"], pad)
    elif n.op == "tfl_mean":
        y = tf.reduce_mean(tf.reshape(xs[0], (-1, *a["in_shape"])), axis=[1, 2])
    elif n.op == "tfl_pad":
        h = tf.reshape(xs[0], (-1, *a["in_shape"]))
        y = tf.pad(h, _pads(n), constant_values=float(src.scale * (a["value"] -
                                                                   src.zero_point)))
    elif n.op == "tfl_softmax":
        y = tf.nn.softmax(tf.reshape(xs[0], (-1, out.shape[-1])))
    elif n.op == "tfl_requantize":
        y = xs[0]
    else:  # pragma: no cover
        raise StqError(f"layer '{n.name}': no float twin for op {n.op}")
    y = tf.reshape(y, (-1, *out.shape))
    return _ste_quant(tf, y, out.scale, out.zero_point, lo, hi)


def input_range(g: Graph) -> tuple[float, float]:
    """The real values the model input can take: step * (q - zero_point) for q in its range."""
    f = g.input_format
    zp = int(f.get("zero_point", 0))
    return float(f["step"]) * (f["qmin"] - zp), float(f["step"]) * (f["qmax"] - zp)


def check_data(g: Graph, x: np.ndarray, where: str) -> None:
    """One clear line when dataset images ([0, 1], NHWC) cannot be fed to this model."""
    shape = tuple(int(d) for d in g.tensors[g.input].shape)
    if tuple(x.shape[1:]) != shape:
        raise StqError(f"{where}: the data has inputs of shape {tuple(x.shape[1:])}, the model "
                       f"takes {shape}: give the data it was made for (e.g. --dataset cifar10 "
                       "--data-dir DIR for an MLPerf Tiny ResNet-8) or --inputs")
    if len(x) and (not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0):
        raise StqError(f"{where}: input values must be in [0, 1] (images scaled as the dataset "
                       "loaders do); they are mapped onto the model's input range")


def for_attack(g: Graph | None, x: np.ndarray, cfg: Any,
               where: str = "the inputs") -> tuple[Any, np.ndarray, Any]:
    """`stq attack` on a TFLite model: its float twin as the white-box model, and the dataset's
    [0, 1] images (and clip, L-inf and L2 epsilons, the ZOO step) mapped linearly onto the
    model's real input range (the MLPerf ResNet-8: pixel values 0..255, so eps 8/255 becomes
    8). Data that does not fit the model (shape, or values outside [0, 1]) is refused with one
    line naming ``where``."""
    import dataclasses

    if g is None:
        raise StqError("attacking a .tflite model needs --artifact (the OUTDIR of `stq convert "
                       "model.tflite`): the twin and the integer oracles are built from it")
    check_data(g, x, where)
    lo, hi = input_range(g)
    span = hi - lo
    cfg = dataclasses.replace(cfg, clip=(lo, hi), eps=tuple(e * span for e in cfg.eps),
                              l2_eps=tuple(e * span for e in cfg.l2_eps),
                              zoo_step=cfg.zoo_step * span)
    return build_twin(g), (lo + x * span).astype(np.float32), cfg
