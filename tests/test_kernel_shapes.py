"""Every optimized kernel against the NumPy reference (and so the reference C kernel) on random
single-layer graphs: many shapes, strides and paddings, int8 and uint8 inputs, 2-bit and base-3
ternary and int8 weights, and the extreme cases (all +1, all -1 and all-zero weights, inputs at
their minimum and maximum, outputs driven into saturation). Built from the integer IR directly
(no Keras), several layers per compiled program, all reading the graph input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain.codegen import writer as codegen
from toolchain.device.host_model import HostModel
from toolchain.ir import dwlanes
from toolchain.ir.graph import Graph, Node, Tensor
from toolchain.ir.requant import rhe_shift
from toolchain.reference import model as reference

RANGE = {"uint8": (0, 255), "int8": (-128, 127)}


def _weights(rng: np.random.Generator, shape: tuple[int, ...], kind: str, mode: str) -> np.ndarray:
    if mode == "plus":
        return np.ones(shape, np.int64)
    if mode == "minus":
        return -np.ones(shape, np.int64)
    if mode == "zero":
        return np.zeros(shape, np.int64)
    if kind == "int8":
        w = rng.integers(-128, 128, size=shape)
        w.reshape(-1)[:2] = (-128, 127)[:w.size]
        return w
    return rng.integers(-1, 2, size=shape)


def _layer(rng: np.random.Generator, i: int, src: Tensor, op: str, kind: str, mode: str,
           k: int, stride: int, pad: str, oc: int | None = None,
           out_range: tuple[str, int, int] | None = None, shifts: tuple[int, int] = (20, 40),
           xmax: int = 128) -> tuple[Node, Tensor]:
    """One random layer on src; ``oc``, ``out_range`` (dtype, clamp_min, clamp_max) and the
    shift range are drawn unless given; ``xmax``: the input magnitude the outputs are spread
    for."""
    h, w, c = src.shape
    if oc is None:
        oc = c if op == "depthwise_conv2d" else int(rng.integers(1, 21))
    if pad == "same":
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = max((oh - 1) * stride + k - h, 0), max((ow - 1) * stride + k - w, 0)
        pads = (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)
    else:
        pads = (0, 0, 0, 0)
    oh = (h + pads[0] + pads[1] - k) // stride + 1
    ow = (w + pads[2] + pads[3] - k) // stride + 1
    wshape = (k, k, c) if op == "depthwise_conv2d" else (oc, k, k, c)
    weights = _weights(rng, wshape, kind, mode)
    if out_range is None:
        out_dtype = "uint8" if rng.random() < 0.6 else "int8"
        lo, hi = (0, 15) if out_dtype == "uint8" and rng.random() < 0.5 else RANGE[out_dtype]
    else:
        out_dtype, lo, hi = out_range
    taps = k * k * (1 if op == "depthwise_conv2d" else c)
    span = max(1, taps * xmax * (128 if kind == "int8" else 1))
    shift = rng.integers(*shifts, size=oc)
    # outputs spread over the clamp range and beyond it (saturation)
    mult = (2.0 ** shift * (hi - lo + 1) * 3 / span * rng.uniform(0.3, 1.5, oc)
            * rng.choice([-1, 1], oc)).astype(np.int64)
    mult = np.clip(mult, -(2**31 - 1), 2**31 - 1)
    offset = (2.0 ** shift * rng.uniform(lo - 4, hi + 4, oc)).astype(np.int64)
    out = Tensor(f"t{i}", (oh, ow, oc), out_dtype, 1.0, lo, hi)
    node = Node(f"l{i}_{op}_{kind}_{mode}_k{k}s{stride}{pad}", op, [src.name], out.name,
                {"weight_kind": "int8" if kind == "int8" else "ternary",
                 "in_shape": [h, w, c], "kernel": [k, k], "stride": [stride, stride],
                 "pad": list(pads), "clamp": [lo, hi], "requant": "quantized"},
                {"weights": weights.astype(np.int8), "mult": mult.astype(np.int32),
                 "shift": shift.astype(np.int32), "offset": offset})
    return node, out


def _graph(seed: int, dtype: str, c: int, packing: str) -> Graph:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 10, size=2))
    qmin, qmax = RANGE[dtype]
    src = Tensor("x", (h, w, c), dtype, 1.0, qmin, qmax)
    tensors, nodes = {"x": src}, []
    cases = [("depthwise_conv2d", "ternary", "random"), ("depthwise_conv2d", "int8", "random"),
             ("conv2d", "ternary", "random"), ("conv2d", "int8", "random"),
             ("depthwise_conv2d", "ternary", str(rng.choice(["plus", "minus", "zero"]))),
             ("conv2d", "ternary", str(rng.choice(["plus", "minus", "zero"])))]
    for i, (op, kind, mode) in enumerate(cases):
        k = int(rng.choice([1, 3, 3, 5])) if min(h, w) >= 5 else int(rng.choice([1, 3]))
        pad = "same" if k > min(h, w) else str(rng.choice(["same", "valid"]))
        node, out = _layer(rng, i, src, op, kind, mode, k, int(rng.integers(1, 3)), pad)
        nodes.append(node)
        tensors[out.name] = out
    fmt = {"dtype": dtype, "step": 1.0, "qmin": qmin, "qmax": qmax}
    return Graph(f"shapes{seed}", tensors, nodes, "x", nodes[-1].output, fmt, {},
                 {"packing": packing})


def _every_layer_equals_reference(g: Graph, tmp_path: Path, rng: np.random.Generator,
                                  n_random: int) -> list[dict]:
    """Run `n_random` random inputs plus all-min, all-max and all-zero through the C written to
    tmp_path/c (compiled for the host) and assert every layer's output equals the reference's;
    returns the reference's tensors per input."""
    t = g.tensors["x"]
    xs = np.concatenate([rng.integers(t.qmin, t.qmax + 1, size=(n_random, *t.shape)),
                         np.full((1, *t.shape), t.qmin), np.full((1, *t.shape), t.qmax),
                         np.zeros((1, *t.shape))]).astype(reference.NP_DTYPE[t.dtype])
    per_layer = HostModel(g, tmp_path / "c", tmp_path / "h").layers(xs)
    envs = [reference.run(g, x) for x in xs]
    for i, env in enumerate(envs):
        for node in g.nodes:
            np.testing.assert_array_equal(per_layer[i][node.output], env[node.output],
                                          err_msg=f"{node.name} differs on input {i}")
    return envs


@pytest.mark.parametrize("seed", range(8))
def test_optimized_kernels_match_reference_on_random_layers(seed: int, tmp_path: Path) -> None:
    dtype = "uint8" if seed % 3 else "int8"
    g = _graph(seed, dtype, c=[4, 8, 12, 16, 3, 6, 1, 2][seed], packing=["2bit", "base3"][seed % 2])
    model = codegen.write(g, tmp_path / "c")
    fast = {x.name for x in model.layers if x.kernel != x.ref_kernel}
    if g.tensors["x"].shape[2] % 4 == 0:  # depthwise needs whole groups of 4 channels
        assert {n.name for n in g.nodes if n.op == "depthwise_conv2d"} <= fast
    if dtype == "uint8":
        assert {n.name for n in g.nodes if n.op == "conv2d"} <= fast
    if g.tensors["x"].shape[2] <= 3:  # int8 weights on 1-3 channels: contiguous patches
        assert any(x.kernel.endswith("_fast4") for x in model.layers)
    envs = _every_layer_equals_reference(g, tmp_path, np.random.default_rng(100 + seed), 12)
    outs = {env[g.nodes[0].output].tobytes() for env in envs}
    assert len(outs) > 1  # outputs vary across inputs


def _conv_graph(seed: int) -> Graph:
    """Ternary convolutions (the USADA8 kernel) on a uint8 map of 5-12 x 5-12 pixels, large
    enough for interior windows (each row read as one run, four groups per LDM) and edges:
    4-32 channels (rows of an odd byte count only for odd seeds), 1x1 and 3x3, strides 1-2,
    'same' and 'valid' padding, random and all +1 / -1 / 0 weights, outputs into saturation;
    2-bit packed for even seeds, base-3 for odd ones."""
    rng = np.random.default_rng(5000 + seed)
    h, w = (int(v) for v in rng.integers(5, 13, size=2))
    c = int(rng.choice([4, 12, 20] if seed % 2 else [8, 16, 32]))
    src = Tensor("x", (h, w, c), "uint8", 1.0, 0, 255)
    tensors, nodes = {"x": src}, []
    modes = ["random", "random", "random", "random", str(rng.choice(["plus", "minus", "zero"]))]
    for i, mode in enumerate(modes):
        k, stride = [3, 3, 1, 3, 3][i], 1 + (i + seed) % 2
        node, out = _layer(rng, i, src, "conv2d", "ternary", mode, k, stride,
                           ["same", "valid"][i % 2])
        nodes.append(node)
        tensors[out.name] = out
    return _graph_of(f"conv{seed}", tensors, nodes, seed)


@pytest.mark.parametrize("seed", range(4))
def test_fast_ternary_conv_matches_reference_on_random_layers(seed: int, tmp_path: Path) -> None:
    g = _conv_graph(seed)
    model = codegen.write(g, tmp_path / "c")
    assert all(x.kernel.endswith(("_fastu", "_fastu3")) for x in model.layers)
    envs = _every_layer_equals_reference(g, tmp_path, np.random.default_rng(600 + seed), 8)
    for node in g.nodes[:4]:  # outputs vary across inputs (the all-zero-weight layer need not)
        outs = {env[node.output].tobytes() for env in envs}
        assert len(outs) > 1, node.name


# a fused residual layer: its residual's dtype and range, and how it is added
RESIDUALS = {"one": ("int8", 0, 15), "quarter": ("int8", -127, 127), "mixed": ("uint8", 0, 255),
             "saturate": ("uint8", 0, 15), "tie": ("int8", 0, 15)}


def _residual_graph(seed: int) -> Graph:
    """Ternary convs with a fused residual add on a uint8 0..15 map (the USADA8 kernel's 32-bit
    path with the residual read per pixel, toolchain/ir/t2u.py), each right after the conv that
    makes its residual (so it writes in place over it): 3-16 channels (rows of an odd byte
    count, the byte patch), 1x1 and 3x3, strides 1-2, 'same' and 'valid' padding, odd map sizes
    (a last block of fewer than 4 pixels); residuals int8 0..15 added as they are (ResNet-8's
    first block), int8 -127..127 at a quarter (its later blocks), uint8 0..255 at signed
    ratios of 0.02-0.1, a residual at four times its step that saturates the output (all +1,
    -1 or 0 weights by seed % 3, the accumulator's part a quarter of the others'), and a layer
    whose exact ties (acc / 2, round half to even) no 32-bit constants reproduce: it keeps the
    64-bit path."""
    rng = np.random.default_rng(9000 + seed)
    h, w = (int(v) for v in rng.choice([3, 5, 7, 9], size=2))
    c = int(rng.choice([3, 4, 5, 8, 12, 16]))
    src = Tensor("x", (h, w, c), "uint8", 1.0, 0, 15)
    tensors, nodes = {"x": src}, []
    for i, how in enumerate(RESIDUALS):
        k, stride = int(rng.choice([1, 3, 3])), int(rng.integers(1, 3)) if i else 1
        pad = "same" if k > min(h, w) else str(rng.choice(["same", "valid"]))
        prod, r = _layer(rng, 2 * i, src, "conv2d", "ternary", "random", k, stride, pad,
                         out_range=RESIDUALS[how], xmax=4)
        _, rlo, rhi = RESIDUALS[how]  # residuals spread around the middle of their range
        prod.arrays["offset"] = (2.0 ** prod.arrays["shift"] * rng.uniform(
            (3 * rlo + rhi) / 4, (rlo + 3 * rhi) / 4, r.shape[2])).astype(np.int64)
        mode = ["plus", "minus", "zero"][seed % 3] if how == "saturate" else "random"
        node, out = _layer(rng, 2 * i + 1, src, "conv2d", "ternary", mode, k, stride, pad,
                           oc=r.shape[2], shifts=(20, 29), xmax=15,
                           out_range=("uint8", 0, 15) if how == "saturate" else None)
        a, oc = node.arrays, r.shape[2]
        shift = a["shift"].astype(np.int64)
        ratio = {"one": np.ones(oc), "quarter": np.full(oc, 0.25), "saturate": np.full(oc, 4.0),
                 "mixed": rng.uniform(0.02, 0.1, oc) * rng.choice([-1, 1], oc),
                 "tie": np.ones(oc)}[how]
        a["mult2"] = (2.0 ** shift * ratio).astype(np.int32)
        if how == "saturate":  # the residual dominates: outputs vary with it, then saturate
            a["mult"] = a["mult"] // 4
        if how == "tie":  # acc * 2^(shift-1): every odd accumulator is an exact .5 tie
            a["mult"] = ((1 << (shift - 1)) * rng.choice([-1, 1], oc)).astype(np.int32)
            a["offset"] = (sum(node.attrs["clamp"]) // 2 - 8) * (1 << shift)  # whole steps
        node.name = f"r{i}_{how}_{mode}_k{k}s{stride}{pad}"
        node.inputs.append(r.name)
        nodes += [prod, node]
        tensors[r.name], tensors[out.name] = r, out
    return _graph_of(f"res{seed}", tensors, nodes, seed)


@pytest.mark.parametrize("seed", range(6))
def test_fused_residual_conv_matches_reference_on_random_layers(seed: int,
                                                                tmp_path: Path) -> None:
    g = _residual_graph(seed)
    model = codegen.write(g, tmp_path / "c")
    assert all(x.kernel.endswith(("_fastu", "_fastu3")) for x in model.layers)
    res = [x for x in model.layers if "_res" in x.kernel]
    assert len(res) == len(RESIDUALS)
    proven = {how: x.p["req32"] != "NULL" for x, how in zip(res, RESIDUALS, strict=True)}
    # the ratios of ResNet-8's residuals are proven, the ties are not; random ratios on a
    # 0..255 residual may be either (e.g. |acc * m| + |o| too close to 2^31 at the shift
    # where m is exact)
    assert [proven[how] for how in ("one", "quarter", "saturate", "tie")] == [True] * 3 + [False]
    assert any(x.name.startswith("r4_tie") for x in res)
    shapes = [g.tensors[n.output].shape for n in g.nodes[1::2]]
    assert any(s[0] * s[1] % 4 for s in shapes)  # a last block of fewer than 4 pixels
    envs = _every_layer_equals_reference(g, tmp_path, np.random.default_rng(900 + seed), 10)
    above = []  # per residual layer: the share of outputs above the clamp's floor
    for node in g.nodes[1::2]:
        y = np.stack([env[node.output] for env in envs])
        assert len({v.tobytes() for v in y}) > 1, node.name  # outputs vary across inputs
        above.append(float(np.mean(y != node.attrs["clamp"][0])))
    assert min(above) > 0.25 and np.mean(above) > 0.5, above  # most outputs are not the floor
    sat = g.nodes[7]  # the residual at four times its step drives outputs to the clamp
    hi = sat.attrs["clamp"][1]
    assert any(np.any(env[sat.output] == hi) for env in envs), sat.name


def _dw_input(rng: np.random.Generator, seed: int) -> Tensor:
    """The input "x" of a depthwise test graph: 3-11 x 3-11 pixels, 4-16 channels, uint8 for
    even seeds and int8 for odd ones."""
    dtype = ["uint8", "int8"][seed % 2]
    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    c = int(rng.choice([4, 8, 12, 16]))
    return Tensor("x", (h, w, c), dtype, 1.0, *RANGE[dtype])


def _dw_graph(seed: int) -> Graph:
    """Depthwise layers only, 3x3 mostly (the straight-line 3-wide path), on maps large enough
    for interior and edge pixels: every stride 1-2, 'same' and 'valid' padding, ternary and int8
    weights, all +1 / -1 / 0 weights, 4-16 channels, random multipliers (with or without
    proven 32-bit constants), outputs driven into saturation."""
    rng = np.random.default_rng(1000 + seed)
    src = _dw_input(rng, seed)
    h, w, _ = src.shape
    tensors, nodes = {"x": src}, []
    modes = ["random", "random", "random", str(rng.choice(["plus", "minus", "zero"]))]
    for i, mode in enumerate(modes):
        kind = "int8" if i == 1 else "ternary"
        k = 3 if i < 3 or min(h, w) < 5 else 5
        pad = "same" if k > min(h, w) else ["same", "valid"][i % 2]
        node, out = _layer(rng, i, src, "depthwise_conv2d", kind, mode, k, 1 + (i + seed) % 2,
                           pad)
        nodes.append(node)
        tensors[out.name] = out
    return _graph_of(f"dw{seed}", tensors, nodes, seed)


def _graph_of(name: str, tensors: dict[str, Tensor], nodes: list[Node], seed: int) -> Graph:
    """The graph of `nodes` on input "x", 2-bit packed for even seeds, base-3 for odd ones."""
    x = tensors["x"]
    fmt = {"dtype": x.dtype, "step": 1.0, "qmin": x.qmin, "qmax": x.qmax}
    return Graph(name, tensors, nodes, "x", nodes[-1].output, fmt, {},
                 {"packing": ["2bit", "base3"][seed % 2]})


@pytest.mark.parametrize("seed", range(4))
def test_fast_depthwise_matches_reference_on_random_layers(seed: int, tmp_path: Path) -> None:
    g = _dw_graph(seed)
    model = codegen.write(g, tmp_path / "c")
    assert all(x.kernel.endswith("_fast") for x in model.layers)
    envs = _every_layer_equals_reference(g, tmp_path, np.random.default_rng(200 + seed), 8)
    for node in g.nodes[:3]:  # outputs vary across inputs (the all-zero-weight layer need not)
        outs = {env[node.output].tobytes() for env in envs}
        assert len(outs) > 1, node.name


def _dwu_graph(seed: int) -> Graph:
    """Byte-lane depthwise layers (ternary weights on a 0..X tensor, taps * X <= 255): a 1x1
    depthwise layer clamps the graph input to [0, X] (X = 1, 3, 7 or 15, saturating at both
    ends), then 3x3 (straight-line path) and 1x1 / 5x5 (general loop) layers read it with
    strides 1-2, 'same' and 'valid' padding, random and all +1 / -1 / 0 weights, outputs into
    saturation (int8 and uint8, 4-bit and full clamps) with negative and positive multipliers;
    a last layer steeper than one output level per accumulator unit in every other group
    (those groups keep an output clamp: the kernel's segments)."""
    rng = np.random.default_rng(3000 + seed)
    src = _dw_input(rng, seed)
    h, w, c = src.shape
    first, mid = _layer(rng, 0, src, "depthwise_conv2d", "ternary", "plus", 1, 1, "valid")
    x = int(rng.choice([1, 3, 7, 15])) if seed else 15
    first.attrs["clamp"] = [0, x]
    first.arrays["offset"] = (first.arrays["offset"] - (first.arrays["offset"] >> 1)).astype(
        np.int64)  # both ends of [0, X] reached
    mid = Tensor(mid.name, mid.shape, "uint8", 1.0, 0, x)
    tensors, nodes = {"x": src, mid.name: mid}, [first]
    modes = ["random", "random", "random", str(rng.choice(["plus", "minus", "zero"])), "steep"]
    for i, mode in enumerate(modes, start=1):
        k = 3 if i < 3 or i == 5 or min(h, w) < 5 or x > 7 else int(rng.choice([1, 5]))
        pad = "same" if k > min(h, w) else ["same", "valid"][i % 2]
        node, out = _layer(rng, i, mid, "depthwise_conv2d", "ternary",
                           "random" if mode == "steep" else mode, k, 1 + (i + seed) % 2, pad)
        if mode == "steep":  # 4-bit outputs: a steep channel saturates at both ends
            node.attrs["clamp"] = [0, 15]
            out = Tensor(out.name, out.shape, "uint8", 1.0, 0, 15)
        lo, hi = node.attrs["clamp"]
        shift = rng.integers(12, 28, size=c)
        node.arrays["shift"] = shift.astype(np.int32)
        node.arrays["offset"] = (2.0 ** shift * rng.uniform(lo - 4, hi + 4, c)).astype(np.int64)
        # output levels per accumulator unit: at most 1 (the accumulators span about X * taps:
        # the exact case without output clamps), or in the steep layer 3 to 6 in groups 0, 2,
        # ... of 4 channels (their outputs keep a clamp)
        slope = np.minimum(1.5 * (hi - lo + 1) / (x * k * k), 1.0) * rng.uniform(0.5, 1, c)
        if mode == "steep":
            slope = np.where(np.arange(c) // 4 % 2 == 0, rng.uniform(3, 6, c), slope)
        node.arrays["mult"] = (2.0 ** shift * slope * rng.choice([-1, 1], c)).astype(np.int32)
        nodes.append(node)
        tensors[out.name] = out
    return _graph_of(f"dwu{seed}", tensors, nodes, seed)


@pytest.mark.parametrize("seed", range(6))
def test_byte_lane_depthwise_matches_reference_on_random_layers(seed: int,
                                                                tmp_path: Path) -> None:
    g = _dwu_graph(seed)
    model = codegen.write(g, tmp_path / "c")
    kinds = [x.kernel.rsplit("_", 1)[1] for x in model.layers]
    assert kinds == ["fast"] + ["fastu"] * 5, kinds
    steep = g.nodes[-1]
    table = dwlanes.lane_constants(steep.arrays["weights"], steep.arrays["mult"],
                                   steep.arrays["offset"], steep.arrays["shift"],
                                   tuple(steep.attrs["clamp"]), 0, g.tensors["t0"].qmax)
    assert table is not None and table[1] > 0  # groups with output clamps: segments
    envs = _every_layer_equals_reference(g, tmp_path, np.random.default_rng(400 + seed), 8)
    mid = g.nodes[0].output
    assert {int(v) for env in envs for v in np.unique(env[mid])} >= {0, g.tensors[mid].qmax}
    for node in g.nodes[1:4]:  # outputs vary across inputs (the all-zero-weight layer need not)
        outs = {env[node.output].tobytes() for env in envs}
        assert len(outs) > 1, node.name


def test_byte_lane_constants_refuse_a_jump_over_the_clamp() -> None:
    """Three output levels per accumulator unit jump from below -128 straight to -125: no
    affine map of the byte-clamped sum gives -128 at the clamp, so the layer falls back."""
    w = np.array([1, 0, -1, -1, 0, -1, 0, 1, -1])
    assert dwlanes.channel(w, 1173913984, 33259414389, 28, (-128, 127), 15) is None
    a, b, m, o, s = dwlanes.channel(w, 1173913984 // 8, 33259414389 // 8, 28, (-128, 127), 15)
    t = np.arange(0, 15 * 6 + 1)
    want = np.clip(rhe_shift((t - 15 * 4) * (1173913984 // 8) + 33259414389 // 8,
                             np.int64(28)), -128, 127)
    np.testing.assert_array_equal((np.clip(t, a, b) * m + o) >> s, want)


def _pool_graph(seed: int) -> Graph:
    """Average pooling layers with the identity requantization (int32 window sums) on an int8
    map of 4-16 channels: windows 1x1 to global, strides 1-3, clamps that bind and that do not;
    plus a window of more than 256 taps on a larger map, which keeps the reference kernel
    (int16 pair sums could wrap)."""
    rng = np.random.default_rng(7000 + seed)
    big = seed % 2 == 1
    h, w = (17, 16) if big else (int(rng.integers(2, 13)), int(rng.integers(2, 13)))
    c = int(rng.choice([4, 8, 12, 16]))
    src = Tensor("x", (h, w, c), "int8", 1.0, -128, 127)
    tensors, nodes = {"x": src}, []
    shapes = [(1, 1, 1), (min(h, 2), min(w, 3), int(rng.integers(1, 4))), (h, w, 1),
              (min(h, 3), min(w, 3), 2)]
    for i, (kh, kw, s) in enumerate(shapes):
        oh, ow = (h - kh) // s + 1, (w - kw) // s + 1
        taps = kh * kw
        lo, hi = (-128 * taps, 127 * taps) if i % 2 == 0 else (-40 * taps, 30 * taps)
        out = Tensor(f"t{i}", (oh, ow, c), "int32", 1.0, lo, hi)
        nodes.append(Node(f"p{i}_avgpool_k{kh}x{kw}s{s}", "avgpool", ["x"], out.name,
                          {"in_shape": [h, w, c], "pool": [kh, kw], "stride": [s, s],
                           "pad": [0, 0, 0, 0], "out_channels": c, "clamp": [lo, hi],
                           "requant": "exact"},
                          {"mult": np.ones(c, np.int32), "shift": np.zeros(c, np.int32),
                           "offset": np.zeros(c, np.int64)}))
        tensors[out.name] = out
    return _graph_of(f"pool{seed}", tensors, nodes, 0)


@pytest.mark.parametrize("seed", range(4))
def test_fast_average_pooling_matches_reference_on_random_layers(seed: int,
                                                                 tmp_path: Path) -> None:
    g = _pool_graph(seed)
    model = codegen.write(g, tmp_path / "c")
    fast = [x.kernel.endswith("_fast") for x in model.layers]
    taps = [n.attrs["pool"][0] * n.attrs["pool"][1] for n in g.nodes]
    assert fast == [t <= 256 for t in taps], (fast, taps)
    envs = _every_layer_equals_reference(g, tmp_path, np.random.default_rng(800 + seed), 8)
    for node in g.nodes:  # outputs vary across inputs
        assert len({env[node.output].tobytes() for env in envs}) > 1, node.name
    sums = np.concatenate([env[g.nodes[2].output].reshape(-1) for env in envs])
    assert sums.min() == -128 * taps[2] and sums.max() == 127 * taps[2]  # extremes reached


# the int32 vector a global average pooling (identity requantization) hands a dense layer, as
# in DS-CNN and ResNet-8: its window (the sums' range) and clamp, per seed of _dense_graph
DENSE_POOL = {2: ((16, 16), None), 5: ((5, 5), 1875), 8: ((5, 5), 1875)}


def _dense_graph(seed: int) -> Graph:
    """Dense layers with int8 weights (the int16-pair SMLAD kernel, three rows per pass) on a
    flat vector of 1-131 values (mostly not a multiple of 4: the int16 tail): the graph's int8
    or uint8 input, or (DENSE_POOL) the int32 window sums of a global average pooling of an
    int8 map (DS-CNN's 5x5 clamped at +-1875, and 16x16 up to -32768..32512: int16 lanes at
    their limits); 1, 2, 3 and many output rows (0, 1 or 2 left after the passes of 3),
    random weights and all +127 / -128 / 0, outputs into saturation (int8 and uint8, 4-bit and
    full clamps); most layers get tie-free 64-bit constants, some (a multiplier past int32 at
    shift 32, a tie) the 64-bit path. Each layer is the 1x1 conv of _layer on a 1x1 map, made
    a dense layer."""
    rng = np.random.default_rng(11000 + seed)
    n = int([1, 2, 3, 5, 7, 13, 64, 131, 64][seed])
    dtype = "uint8" if seed % 3 == 1 else "int8"
    qmin, qmax = RANGE[dtype]
    xstd = 74.0  # of a random input value
    tensors: dict[str, Tensor] = {"x": Tensor("x", (n,), dtype, 1.0, qmin, qmax)}
    nodes: list[Node] = []
    if seed in DENSE_POOL:
        (h, w), clamp = DENSE_POOL[seed]
        tensors["x"] = Tensor("x", (h, w, n), "int8", 1.0, -128, 127)
        qmin, qmax = (-clamp, clamp) if clamp else (-128 * h * w, 127 * h * w)
        xstd = float(np.sqrt(h * w) * 74.0)
        tensors["pool"] = Tensor("pool", (1, 1, n), "int32", 1.0, qmin, qmax)
        nodes.append(Node(f"pool{h}x{w}", "avgpool", ["x"], "pool",
                          {"in_shape": [h, w, n], "pool": [h, w], "stride": [1, 1],
                           "pad": [0, 0, 0, 0], "out_channels": n, "clamp": [qmin, qmax],
                           "requant": "exact"},
                          {"mult": np.ones(n, np.int32), "shift": np.zeros(n, np.int32),
                           "offset": np.zeros(n, np.int64)}))
    src = tensors[nodes[0].output] if nodes else tensors["x"]
    cases = [("random", 1, (18, 22)), ("random", 2, (20, 40)), ("random", 3, (18, 22)),
             ("random", 37, (20, 40)), ("random", 20, (18, 22)), ("plus", 5, (20, 40)),
             ("minus", 4, (18, 22)), ("zero", 3, (20, 40))]
    for i, (mode, oc, shifts) in enumerate(cases):
        node, out = _layer(rng, i, Tensor(src.name, (1, 1, n), src.dtype, 1.0, qmin, qmax),
                           "conv2d", "int8", mode, 1, 1, "valid", oc=oc, shifts=shifts)
        w = node.arrays["weights"].reshape(oc, n).astype(np.int64)
        w = w * (127 if mode == "plus" else 128 if mode == "minus" else 1)  # +127, -128 or 0
        node.arrays["weights"] = w.astype(np.int8)
        # a random input's sums spread over the clamp range and beyond it (the worst-case
        # span of _layer leaves a long row a few output levels), around its middle
        lo, hi = node.attrs["clamp"]
        shift = node.arrays["shift"].astype(np.int64)
        spread = np.sqrt(n) * (74.0 if mode == "random" else 127.0) * xstd
        mult = (2.0 ** shift * (hi - lo + 1) / (2 * spread) * rng.uniform(0.5, 1.5, oc)
                * rng.choice([-1, 1], oc)).astype(np.int64)
        mult = np.clip(mult, -(2**31 - 1), 2**31 - 1)
        node.arrays["mult"] = mult.astype(np.int32)
        node.arrays["offset"] = ((2.0 ** shift * rng.uniform(lo, hi + 1, oc)).astype(np.int64)
                                 - mult * w.sum(axis=1) * ((qmin + qmax) // 2))
        node.op, node.name = "dense", f"d{i}_{mode}_n{n}_oc{oc}_s{shifts[0]}"
        node.inputs = [src.name]
        node.attrs = {"weight_kind": "int8", "in_features": n, "out_channels": oc,
                      "clamp": node.attrs["clamp"], "requant": "quantized"}
        out = Tensor(out.name, (oc,), out.dtype, 1.0, out.qmin, out.qmax)
        nodes.append(node)
        tensors[out.name] = out
    return _graph_of(f"dense{seed}", tensors, nodes, 0)


@pytest.mark.parametrize("seed", range(9))
def test_fast_dense_matches_reference_on_random_layers(seed: int, tmp_path: Path) -> None:
    g = _dense_graph(seed)
    model = codegen.write(g, tmp_path / "c")
    layers = [x for x in model.layers if x.op == "dense"]
    assert len(layers) == 8 and all(x.kernel.endswith("_fast") for x in layers)
    assert all(x.kernel.startswith("stq_dense_i8_i32_") for x in layers) == (seed in DENSE_POOL)
    proven = [x.p["req32"] != "NULL" for x in layers]
    assert any(proven) and not all(proven), proven  # both requantization paths
    envs = _every_layer_equals_reference(g, tmp_path, np.random.default_rng(1100 + seed), 12)
    dense = [node for node in g.nodes if node.op == "dense"]
    for node in dense[:5]:  # outputs vary across inputs (not the constant-weight layers)
        outs = {env[node.output].tobytes() for env in envs}
        assert len(outs) > 1, node.name
    if seed in DENSE_POOL and DENSE_POOL[seed][1] is None:  # int16 lanes at both limits
        sums = np.stack([env["pool"] for env in envs])
        assert sums.min() == -32768 and sums.max() == 127 * 256
    ends = set()  # the layers saturate: some outputs at the clamp's floor, some at its top
    for node in dense:
        lo, hi = node.attrs["clamp"]
        y = np.stack([env[node.output] for env in envs])
        ends |= ({"lo"} if np.any(y == lo) else set()) | ({"hi"} if np.any(y == hi) else set())
    assert ends == {"lo", "hi"}
