"""C for the ``tfl_*`` IR ops (TFLite int8 semantics, docs/semantics.md TFLite section): each
node's parameter record, its flash arrays, and which kernel template it gets (reference, or the
DSP variant codegen/selection.py picks). writer.py assembles the files as for every model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from toolchain.codegen.carrays import CArray, literal
from toolchain.codegen.layers import record
from toolchain.codegen.selection import tfl_fast_buffer_bytes, tfl_fast_variant
from toolchain.ir.graph import Graph, Node

KERNEL = {"tfl_conv2d": "conv2d", "tfl_depthwise_conv2d": "dwconv2d",
          "tfl_fully_connected": "fc", "tfl_add": "add", "tfl_avgpool": "avgpool",
          "tfl_maxpool": "maxpool", "tfl_mean": "mean", "tfl_pad": "pad",
          "tfl_softmax": "softmax", "tfl_requantize": "requantize"}
WHAT = {"tfl_conv2d": "CONV_2D (int8 per-channel, OHWI weights)",
        "tfl_depthwise_conv2d": "DEPTHWISE_CONV_2D (int8 per-channel, HWC weights over the "
        "output channels, any depth multiplier)",
        "tfl_fully_connected": "FULLY_CONNECTED (int8, weights [out][in])",
        "tfl_add": "ADD (int8, same shapes; out may alias either input)",
        "tfl_avgpool": "AVERAGE_POOL_2D (int8)", "tfl_maxpool": "MAX_POOL_2D (int8)",
        "tfl_mean": "MEAN over H and W (int8)", "tfl_pad": "PAD of H and W (int8)",
        "tfl_softmax": "SOFTMAX int8 -> int8 over the last axis (gemmlowp fixed point)",
        "tfl_requantize": "QUANTIZE int8 -> int8 / standalone RELU, RELU6 (int8)"}

FAST_WHAT = {"tfl_conv2d": "Cortex-M DSP (SMLAD); scratch: im2col of two output pixels as int16.",
             "tfl_fully_connected": "Cortex-M DSP (SMLAD), two rows per pass; scratch: the "
             "input row as int16.",
             "tfl_add": "scratch: the two inputs' rescalings tabulated (2 x 256 int32).",
             "tfl_depthwise_conv2d": "depth multiplier 1, Cortex-M DSP (SMLABB/SMLATT), 4 "
             "channels per pass; no scratch."}


@dataclass
class TflLayer:
    p: dict
    arrays: list[CArray]
    ref_fn: str
    fn: str
    template: str
    doc: list[str]
    scratch: int = 0
    variant: str | None = None
    extra: dict = field(default_factory=dict)


def _shape3(shape: tuple[int, ...]) -> list[int]:
    """HWC of a tensor; a flat tensor is 1 x 1 x C, (rows, C) is rows x 1 x C."""
    s = list(shape)
    if len(s) == 3:
        return s
    if len(s) == 1:
        return [1, 1, s[0]]
    return [int(np.prod(s[:-1])), 1, s[-1]]


def tfl_layer(g: Graph, n: Node, base: str, prefix: str, kernels: str,
              model_input: bool) -> TflLayer:
    a = n.attrs
    out, src = g.tensors[n.output], g.tensors[n.inputs[0]]
    p = record.defaults()
    ih, iw, ic = a.get("in_shape", _shape3(src.shape))
    oh, ow, oc = _shape3(out.shape)
    if n.op == "tfl_fully_connected":
        ih, iw, ic = 1, 1, src.size
    p.update(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc)
    if "kernel" in a or "pool" in a:
        p["k_h"], p["k_w"] = a.get("kernel", a.get("pool"))
        p["stride_h"], p["stride_w"] = a["stride"]
    if "pad" in a:
        p["pad_t"], p["pad_l"] = a["pad"][0], a["pad"][2]
    if "dilation" in a:
        p["dil_h"], p["dil_w"] = a["dilation"]
    if "clamp" in a:
        p["clamp_min"], p["clamp_max"] = (literal(v, "int32_t") for v in a["clamp"])
    for key in ("in_zp", "in2_zp", "out_zp", "diff_min"):
        if key in a:
            p[key] = literal(a[key], "int32_t")
    if n.op == "tfl_pad":
        p["out_zp"] = literal(a["value"], "int32_t")
    if n.op == "tfl_softmax":
        p["out_h"], p["out_w"] = out.size // out.shape[-1], 1
    p["depth_mult"] = a.get("depth_multiplier", 1)
    arrays = []
    if "weights" in n.arrays:
        w = n.arrays["weights"]
        arrays.append(CArray(f"{prefix}w_{base}", "int8_t", w.astype(np.int8).reshape(-1),
                             f"{n.name}: int8 weights {list(w.shape)}"))
        p["weights"] = f"{prefix}w_{base}"
        p["row_bytes"] = int(w[0].size) if n.op != "tfl_depthwise_conv2d" else 0
    for key in ("bias", "mult", "shift"):
        if key in n.arrays:
            arrays.append(CArray(f"{prefix}q_{base}_{key}", "int32_t", n.arrays[key],
                                 f"{n.name}: {key}"))
            p[key] = f"{prefix}q_{base}_{key}"
    ref_fn = f"{prefix}tfl_{KERNEL[n.op]}_i8"
    doc = [f"TFLite {WHAT[n.op]}; exact TFLite reference-kernel (BUILTIN_REF) semantics of "
           "docs/semantics.md.",
           "in, out: int8 HWC (or flat); p: shapes, window, zero points, per-channel int32 "
           "bias, quantized multipliers mult and exponents shift (> 0: left)."]
    variant = tfl_fast_variant(n, kernels, out.size)
    if variant is None:
        return TflLayer(p, arrays, ref_fn, ref_fn, f"reference/{n.op}.c.j2", doc)
    doc.append(f"Optimized: same results as {ref_fn} for every input; {FAST_WHAT[n.op]}")
    return TflLayer(p, arrays, ref_fn, f"{ref_fn}_{variant}",
                    f"optimized/{n.op}_{variant}.c.j2", doc, tfl_fast_buffer_bytes(p, n.op),
                    variant)
