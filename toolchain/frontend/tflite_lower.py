"""One lowering function per supported TFLite op: TFLite op -> ``tfl_*`` IR node with every
parameter precomputed (toolchain/ir/tflite_params.py; docs/semantics.md, TFLite section)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from toolchain.frontend.tflite import Builder, TflOp
from toolchain.ir import tflite_params as tp

PAD_SAME = 0


def _act(b: Builder, op: TflOp) -> tuple[int, int]:
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    out = b.T(op.outputs[0])
    try:
        return tp.activation_range(act, out.s, out.zp)
    except ValueError:
        raise b.fail(op, f"fused activation {act} is not supported (NONE, RELU, RELU6, "
                     "RELU_N1_TO_1 are)") from None


def _hwc(b: Builder, op: TflOp, i: int) -> list[int]:
    shape = b.T(i).shape
    if len(shape) != 4 or shape[0] != 1:
        raise b.fail(op, f"tensor '{b.T(i).name}' has shape {list(shape)}; expected "
                     "[1, H, W, C]")
    return [int(s) for s in shape[1:]]


def _window(b: Builder, op: TflOp, hw: list[int], k: list[int], dil: list[int]) -> dict:
    o = op.options
    same = o.padding == PAD_SAME
    stride = [int(o.strideH), int(o.strideW)]
    oh, pt, pb = tp.padding(stride[0], dil[0], hw[0], k[0], same)
    ow, pl, pr = tp.padding(stride[1], dil[1], hw[1], k[1], same)
    out = b.T(op.outputs[0]).shape
    if list(out[1:3]) != [oh, ow]:
        raise b.fail(op, f"output {list(out)} does not match the padding arithmetic ({oh}x{ow})")
    return {"stride": stride, "dilation": dil, "pad": [pt, pb, pl, pr]}


def _bias(b: Builder, op: TflOp, n: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        t = b.T(op.inputs[2])
        if t.dtype != "int32" or t.data is None:
            raise b.fail(op, f"bias '{t.name}' must be a constant int32 tensor")
        return t.data.reshape(-1).astype(np.int32)
    return np.zeros(n, dtype=np.int32)


def _filter(b: Builder, op: TflOp) -> np.ndarray:
    w = b.T(op.inputs[1])
    if w.data is None or w.dtype != "int8" or w.scale is None:
        raise b.fail(op, f"weights '{w.name}' must be constant quantized int8")
    if w.zero_point is not None and np.any(w.zero_point != 0):
        raise b.fail(op, f"weights '{w.name}' have a non-zero zero point")
    return w.data


def _scales(b: Builder, op: TflOp, n: int) -> np.ndarray:
    sc = b.T(op.inputs[1]).scale
    assert sc is not None
    return sc if len(sc) == n else np.repeat(sc[:1], n)


def conv(b: Builder, op: TflOp) -> None:
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    w = _filter(b, op)
    depthwise = op.name == "DEPTHWISE_CONV_2D"
    hwc = _hwc(b, op, op.inputs[0])
    oc = int(w.shape[3] if depthwise else w.shape[0])
    dil = [int(op.options.dilationHFactor), int(op.options.dilationWFactor)]
    attrs = {"in_shape": hwc, "kernel": [int(w.shape[1]), int(w.shape[2])],
             **_window(b, op, hwc[:2], [int(w.shape[1]), int(w.shape[2])], dil),
             "in_zp": x.zp, "out_zp": o.zp, "clamp": list(_act(b, op)), "weight_kind": "int8"}
    if depthwise:
        dm = oc // hwc[2]
        if dm * hwc[2] != oc:
            raise b.fail(op, f"{oc} output channels is not a multiple of {hwc[2]} inputs")
        attrs["depth_multiplier"] = dm
        weights = w.reshape(w.shape[1:])
    else:
        if int(w.shape[3]) != hwc[2]:
            raise b.fail(op, "grouped convolution (filter depth != input channels) is not "
                         "supported")
        weights = w
    mult, shift = tp.per_channel(x.s, _scales(b, op, oc), o.s)
    b.add(op, "tfl_depthwise_conv2d" if depthwise else "tfl_conv2d",
          [b.value(op, op.inputs[0])], attrs,
          {"weights": weights, "bias": _bias(b, op, oc), "mult": mult, "shift": shift},
          tuple(attrs["clamp"]))


def fully_connected(b: Builder, op: TflOp) -> None:
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    w = _filter(b, op)
    n_out, n_in = (int(s) for s in w.shape)
    if int(np.prod(x.shape)) != n_in:
        raise b.fail(op, f"input {list(x.shape)} is not one row of {n_in} features (batch 1)")
    sc = b.T(op.inputs[1]).scale
    assert sc is not None
    if len(sc) > 1:
        mult, shift = tp.per_channel(x.s, sc, o.s)
    else:
        m, s = tp.fc_per_tensor(x.s, float(sc[0]), o.s)
        mult, shift = np.full(n_out, m, np.int32), np.full(n_out, s, np.int32)
    clamp = _act(b, op)
    b.add(op, "tfl_fully_connected", [b.value(op, op.inputs[0])],
          {"in_zp": x.zp, "out_zp": o.zp, "clamp": list(clamp), "weight_kind": "int8"},
          {"weights": w, "bias": _bias(b, op, n_out), "mult": mult, "shift": shift}, clamp)


def add(b: Builder, op: TflOp) -> None:
    x1, x2, o = b.T(op.inputs[0]), b.T(op.inputs[1]), b.T(op.outputs[0])
    if x1.shape != x2.shape or x1.shape != o.shape:
        raise b.fail(op, f"broadcasting ADD ({list(x1.shape)} + {list(x2.shape)}) is not "
                     "supported")
    m, s = tp.add_params(x1.s, x2.s, o.s)
    clamp = _act(b, op)
    b.add(op, "tfl_add", [b.value(op, op.inputs[0]), b.value(op, op.inputs[1])],
          {"in_zp": x1.zp, "in2_zp": x2.zp, "out_zp": o.zp, "clamp": list(clamp)},
          {"mult": np.array(m, np.int32), "shift": np.array(s, np.int32)}, clamp)


def pool(b: Builder, op: TflOp) -> None:
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    if (x.s, x.zp) != (o.s, o.zp):
        raise b.fail(op, "input and output quantization differ")
    hwc = _hwc(b, op, op.inputs[0])
    k = [int(op.options.filterHeight), int(op.options.filterWidth)]
    clamp = _act(b, op)
    attrs = {"in_shape": hwc, "pool": k, **_window(b, op, hwc[:2], k, [1, 1]),
             "clamp": list(clamp)}
    del attrs["dilation"]
    kind = "tfl_avgpool" if op.name == "AVERAGE_POOL_2D" else "tfl_maxpool"
    b.add(op, kind, [b.value(op, op.inputs[0])], attrs, None, clamp)


def mean(b: Builder, op: TflOp) -> None:
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    hwc = _hwc(b, op, op.inputs[0])
    axes_t = b.T(op.inputs[1])
    axes = sorted({int(a) % 4 for a in np.asarray(axes_t.data).reshape(-1)}) \
        if axes_t.data is not None else None
    if axes != [1, 2]:
        raise b.fail(op, f"MEAN over axes {axes} is not supported (only over H and W, axes "
                     "[1, 2], of an NHWC tensor)")
    m, s = tp.mean_params(x.s, o.s, hwc[0] * hwc[1])
    b.add(op, "tfl_mean", [b.value(op, op.inputs[0])],
          {"in_shape": hwc, "in_zp": x.zp, "out_zp": o.zp},
          {"mult": np.array([m], np.int32), "shift": np.array([s], np.int32)})


def pad(b: Builder, op: TflOp) -> None:
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    hwc = _hwc(b, op, op.inputs[0])
    pads_t = b.T(op.inputs[1])
    if pads_t.data is None:
        raise b.fail(op, "paddings must be a constant tensor")
    pads = np.asarray(pads_t.data).reshape(-1, 2).astype(int).tolist()
    if len(pads) != 4 or pads[0] != [0, 0] or pads[3] != [0, 0]:
        raise b.fail(op, f"paddings {pads}: only H and W of an NHWC tensor may be padded")
    if (x.s, x.zp) != (o.s, o.zp):
        raise b.fail(op, "input and output quantization differ")
    value = o.zp
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(b.T(op.inputs[2]).data).reshape(-1)[0])
    b.add(op, "tfl_pad", [b.value(op, op.inputs[0])],
          {"in_shape": hwc, "pad": [pads[1][0], pads[1][1], pads[2][0], pads[2][1]],
           "value": value})


def reshape(b: Builder, op: TflOp) -> None:
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    if (x.s, x.zp) != (o.s, o.zp):
        raise b.fail(op, "input and output quantization differ")
    b.names[op.outputs[0]] = b.value(op, op.inputs[0])  # row-major: the same bytes


def softmax(b: Builder, op: TflOp) -> None:
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    if o.zp != -128 or abs(o.s - 1.0 / 256) > 1e-10:
        raise b.fail(op, f"output quantization ({o.s}, {o.zp}) must be (1/256, -128)")
    m, lshift, diff_min = tp.softmax_params(float(op.options.beta), x.s)
    if lshift < 0:
        raise b.fail(op, "beta * input scale is too small for the fixed-point softmax")
    b.add(op, "tfl_softmax", [b.value(op, op.inputs[0])], {"diff_min": diff_min},
          {"mult": np.array([m], np.int32), "shift": np.array([lshift], np.int32)})


def requantize(b: Builder, op: TflOp) -> None:
    """QUANTIZE int8 -> int8 and standalone RELU / RELU6."""
    x, o = b.T(op.inputs[0]), b.T(op.outputs[0])
    m, s = tp.requantize_params(x.s, o.s)
    clamp = (-128, 127)
    if op.name in ("RELU", "RELU6"):
        clamp = tp.activation_range(tp.ACT_RELU if op.name == "RELU" else tp.ACT_RELU6,
                                    o.s, o.zp)
    b.add(op, "tfl_requantize", [b.value(op, op.inputs[0])],
          {"in_zp": x.zp, "out_zp": o.zp, "clamp": list(clamp)},
          {"mult": np.array([m], np.int32), "shift": np.array([s], np.int32)}, clamp)


LOWER: dict[str, Callable[[Builder, TflOp], None]] = {
    "CONV_2D": conv, "DEPTHWISE_CONV_2D": conv, "FULLY_CONNECTED": fully_connected,
    "ADD": add, "AVERAGE_POOL_2D": pool, "MAX_POOL_2D": pool, "MEAN": mean, "PAD": pad,
    "PADV2": pad, "RESHAPE": reshape, "SQUEEZE": reshape, "SOFTMAX": softmax,
    "QUANTIZE": requantize, "RELU": requantize, "RELU6": requantize,
}
