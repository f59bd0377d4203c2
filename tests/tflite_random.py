"""Random tfl_* graphs built straight in the IR (no TFLite converter) for the kernel tests of
the optimized TFLite C kernels: DEPTHWISE_CONV_2D (depth multiplier 1; random kernel, stride,
dilation, padding, channel counts), FULLY_CONNECTED of random sizes (tails of 1-3 inputs, odd and
even row counts), ADD of two such layers (large enough for the tabulated kernel, and small),
extreme zero points, weights and requantization parameters (left and right shifts), fused
activation clamps. Every tensor is int8; multipliers come from toolchain/ir/tflite_params.py as
the frontend computes them."""

from __future__ import annotations

import numpy as np

from toolchain.ir import tflite_params as tp
from toolchain.ir.graph import Graph, Node, Tensor


def _scale(rng: np.random.Generator) -> float:
    return float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(2.0)))))


def _zp(rng: np.random.Generator) -> int:
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def _clamp(rng: np.random.Generator, zp: int) -> tuple[int, int]:
    """No clamp, RELU (zero point .. 127) or RELU6-like (zero point .. zp + 20..60)."""
    kind = rng.choice([0, 0, 1, 2]) if zp < 90 else 0
    return (-128, 127) if kind == 0 else (zp, 127) if kind == 1 else \
        (zp, int(min(127, zp + rng.integers(20, 60))))


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.integers(-127, 128, shape)
    if rng.random() < 0.5:  # extremes: a block of -128 / 127
        w.reshape(-1)[: max(1, w.size // 4)] = rng.choice([-128, 127])
    return w.astype(np.int8)


class _G:
    """The graph under construction, with a calibration batch of every tensor's integers so that
    output scales keep the values inside int8 (random, not saturated) like converted models."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.cal: dict[str, np.ndarray] = {}

    def tensor(self, shape: tuple[int, ...], clamp: tuple[int, int], scale: float, zp: int,
               real: np.ndarray | None = None) -> str:
        name = f"t{len(self.tensors)}"
        self.tensors[name] = Tensor(name, shape, "int8", scale, clamp[0], clamp[1], zp)
        if real is None:
            q = self.rng.integers(-128, 128, (32, *shape))
        else:
            q = np.round(real / np.float32(scale)) + zp
        self.cal[name] = np.clip(q, *clamp).astype(np.int64)
        return name

    def _out(self, real: np.ndarray, shape: tuple[int, ...]) -> tuple[str, tuple[int, int], int]:
        zp = int(self.rng.integers(-100, 60)) if self.rng.random() < 0.8 else _zp(self.rng)
        clamp = _clamp(self.rng, zp)
        spread = float(real.std(0).mean())  # across inputs
        scale = float(np.float32(max(spread, 1e-6) / self.rng.uniform(15, 60)))
        return self.tensor(shape, clamp, scale, zp, real), clamp, zp

    def fc(self, x: str, n_out: int) -> str:
        rng, src = self.rng, self.tensors[x]
        w = _weights(rng, (n_out, src.size))
        ws = np.float32(np.exp(rng.uniform(np.log(1e-4), np.log(0.5), n_out)))
        xc = self.cal[x].reshape(len(self.cal[x]), -1) - src.zero_point
        acc = xc @ w.T.astype(np.int64)
        spread = max(1.0, float(acc.std(0).mean()))  # across inputs: centre each channel
        bias = np.round(-acc.mean(0) + rng.normal(0, spread / 2, n_out)).astype(np.int32)
        real = (acc + bias) * (src.scale * ws.astype(np.float64))
        out, clamp, zp = self._out(real, (n_out,))
        mult, shift = tp.per_channel(src.scale, ws, self.tensors[out].scale)
        self.nodes.append(Node(f"fc{len(self.nodes)}", "tfl_fully_connected", [x], out,
                               {"in_zp": src.zero_point, "out_zp": zp, "clamp": list(clamp),
                                "weight_kind": "int8"},
                               {"weights": w, "bias": bias, "mult": mult, "shift": shift}))
        return out

    def dw(self, x: str, k: tuple[int, int], stride: int, dil: int, same: bool) -> str:
        """DEPTHWISE_CONV_2D, depth multiplier 1 (the optimized kernel's case)."""
        rng, src = self.rng, self.tensors[x]
        h, w_, c = src.shape
        oh, pt, pb = tp.padding(stride, dil, h, k[0], same)
        ow, pl, pr = tp.padding(stride, dil, w_, k[1], same)
        w = _weights(rng, (k[0], k[1], c))
        ws = np.float32(np.exp(rng.uniform(np.log(1e-4), np.log(0.5), c)))
        xc = np.pad(self.cal[x] - src.zero_point, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        acc = np.zeros((len(xc), oh, ow, c), np.int64)
        for ky in range(k[0]):
            for kx in range(k[1]):
                acc += w[ky, kx].astype(np.int64) * xc[:, ky * dil:ky * dil + (oh - 1) * stride
                                                       + 1:stride,
                                                       kx * dil:kx * dil + (ow - 1) * stride
                                                       + 1:stride]
        spread = max(1.0, float(acc.std(0).mean()))
        bias = np.round(-acc.mean((0, 1, 2)) + rng.normal(0, spread / 2, c)).astype(np.int32)
        real = (acc + bias) * (src.scale * ws.astype(np.float64))
        out, clamp, zp = self._out(real, (oh, ow, c))
        mult, shift = tp.per_channel(src.scale, ws, self.tensors[out].scale)
        self.nodes.append(Node(
            f"dw{len(self.nodes)}", "tfl_depthwise_conv2d", [x], out,
            {"in_shape": [h, w_, c], "kernel": list(k), "stride": [stride, stride],
             "dilation": [dil, dil], "pad": [pt, pb, pl, pr], "in_zp": src.zero_point,
             "out_zp": zp, "clamp": list(clamp), "weight_kind": "int8", "depth_multiplier": 1},
            {"weights": w, "bias": bias, "mult": mult, "shift": shift}))
        return out

    def add(self, a: str, b: str) -> str:
        ta, tb = self.tensors[a], self.tensors[b]
        real = (ta.scale * (self.cal[a] - ta.zero_point) + tb.scale * (self.cal[b] -
                                                                         tb.zero_point))
        out, clamp, zp = self._out(real, ta.shape)
        m, s = tp.add_params(ta.scale, tb.scale, self.tensors[out].scale)
        self.nodes.append(Node(f"add{len(self.nodes)}", "tfl_add", [a, b], out,
                               {"in_zp": ta.zero_point, "in2_zp": tb.zero_point, "out_zp": zp,
                                "clamp": list(clamp)},
                               {"mult": np.array(m, np.int32), "shift": np.array(s, np.int32)}))
        return out


def fc_add_graph(seed: int, blocks: int = 3) -> Graph:
    """input (n) -> blocks of [FC, FC -> ADD] or a lone FC, of random sizes -> FC (<= 12)."""
    rng = np.random.default_rng(seed)
    g = _G(rng)
    x = first = g.tensor((int(rng.integers(1, 90)),), (-128, 127), _scale(rng), _zp(rng))
    for _ in range(blocks):
        n_in = g.tensors[x].size
        big = n_in <= 100 and rng.random() < 0.6
        n_out = int(rng.integers(512, 800) if big else rng.integers(1, 70))
        a = g.fc(x, n_out)
        x = g.add(a, g.fc(x, n_out)) if rng.random() < 0.8 else a
    out = g.fc(x, int(rng.integers(2, 13)))
    return _graph(g, f"rand_fc_add_{seed}", first, out)


def dw_graph(seed: int, blocks: int = 2) -> Graph:
    """input (H, W, C) -> blocks of [DW, DW -> ADD] or a lone DW (random kernel 1-5, stride,
    dilation, SAME / VALID, channels of every residue mod 4) -> FC (<= 12)."""
    rng = np.random.default_rng(seed)
    g = _G(rng)
    shape = (int(rng.integers(1, 13)), int(rng.integers(1, 13)), int(rng.integers(1, 24)))
    x = first = g.tensor(shape, (-128, 127), _scale(rng), _zp(rng))
    for _ in range(blocks):
        h, w, _c = g.tensors[x].shape
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        stride, dil = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        same = bool(rng.random() < 0.6) or (k[0] - 1) * dil + 1 > h or (k[1] - 1) * dil + 1 > w
        a = g.dw(x, k, stride, dil, same)
        x = g.add(a, g.dw(x, k, stride, dil, same)) if rng.random() < 0.5 else a
    out = g.fc(x, int(rng.integers(2, 13)))
    return _graph(g, f"rand_dw_{seed}", first, out)


def _graph(g: _G, name: str, first: str, out: str) -> Graph:
    t = g.tensors[first]
    return Graph(name, g.tensors, g.nodes, first, out,
                 {"dtype": "int8", "qmin": -128, "qmax": 127, "float_input": False,
                  "step": t.scale, "zero_point": t.zero_point},
                 {"activation": "none", "dequantize": False},
                 {"packing": "2bit", "frontend": "tflite"})


def inputs(g: Graph, n: int, seed: int) -> np.ndarray:
    """n int8 inputs: random, then all -128, all 127, alternating extremes."""
    t = g.tensors[g.input]
    xs = np.random.default_rng(seed).integers(-128, 128, (n, *t.shape))
    xs[0], xs[1] = -128, 127
    xs[2].reshape(-1)[::2], xs[2].reshape(-1)[1::2] = -128, 127
    return xs.astype(np.int8)
