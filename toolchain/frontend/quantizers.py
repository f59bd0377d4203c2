"""Interpretation of QKeras quantizers as integer formats.

Activation quantizers become an :class:`ActFormat` (integer range and a power-of-two step);
kernel quantizers become integer weights plus a per-output-channel real scale. Anything we
cannot represent exactly raises :class:`StqError` naming the layer and the setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolchain.errors import StqError

SUPPORTED_KERNEL_QUANTIZERS = ("ternary", "stochastic_ternary", "binary", "quantized_bits(<=8)")
SUPPORTED_ACT_QUANTIZERS = ("quantized_relu(bits<=8, integer)", "quantized_bits(bits<=8, integer)")


@dataclass(frozen=True)
class ActFormat:
    """Integer format of a quantized activation: real = step * q, q in [qmin, qmax].

    Rounding into the format is round-half-to-even (QKeras uses tf.round).
    """

    qmin: int
    qmax: int
    step: float  # always a power of two for QKeras quantizers
    source: str  # the quantizer as QKeras prints it

    @property
    def dtype(self) -> str:
        return dtype_for_range(self.qmin, self.qmax)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Host-side quantization of real values into this format (used for model inputs)."""
        q = np.round(np.asarray(x, dtype=np.float64) / self.step)  # numpy rounds half to even
        return np.clip(q, self.qmin, self.qmax).astype(np.int64)

    def to_json(self) -> dict:
        return {"qmin": self.qmin, "qmax": self.qmax, "step": self.step, "dtype": self.dtype,
                "quantizer": self.source}


def dtype_for_range(lo: int, hi: int) -> str:
    if lo >= -128 and hi <= 127:
        return "int8"
    if lo >= 0 and hi <= 255:
        return "uint8"
    if lo >= -(2**31) and hi <= 2**31 - 1:
        return "int32"
    raise StqError(f"integer range [{lo}, {hi}] does not fit 32 bits")


DTYPE_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int32": (-(2**31), 2**31 - 1)}


def _name(q: object) -> str:
    return type(q).__name__


def act_format(layer: str, quantizer: object) -> ActFormat:
    """The integer format produced by an activation quantizer, or a clear error."""
    kind = _name(quantizer)
    text = str(quantizer)
    if kind == "quantized_relu":
        bad = []
        if getattr(quantizer, "use_sigmoid", 0):
            bad.append("use_sigmoid")
        if getattr(quantizer, "negative_slope", 0.0):
            bad.append("negative_slope")
        if getattr(quantizer, "use_stochastic_rounding", False):
            bad.append("use_stochastic_rounding")
        if not getattr(quantizer, "is_quantized_clip", True):
            bad.append("is_quantized_clip=False")
        if float(getattr(quantizer, "qnoise_factor", 1.0)) != 1.0:
            bad.append("qnoise_factor")
        if bad:
            raise StqError(f"layer '{layer}': activation quantizer {text} uses {', '.join(bad)}, "
                           "which has no integer export; use quantized_relu(bits, integer)")
        bits, integer = int(quantizer.bits), int(quantizer.integer)
        if not 1 <= bits <= 8:
            raise StqError(f"layer '{layer}': {text} has {bits} bits; at most 8 are supported")
        return ActFormat(0, 2**bits - 1, 2.0 ** (integer - bits), text)
    if kind == "quantized_bits":
        bad = []
        if quantizer.alpha is not None:
            bad.append(f"alpha={quantizer.alpha!r}")
        if getattr(quantizer, "use_stochastic_rounding", False):
            bad.append("use_stochastic_rounding")
        if float(getattr(quantizer, "qnoise_factor", 1.0)) != 1.0:
            bad.append("qnoise_factor")
        if bad:
            raise StqError(f"layer '{layer}': activation quantizer {text} uses {', '.join(bad)}, "
                           "which has no integer export; use quantized_bits(bits, integer)")
        bits, integer = int(quantizer.bits), int(quantizer.integer)
        keep_negative = int(bool(quantizer.keep_negative))
        unsigned_bits = bits - keep_negative
        if unsigned_bits < 1 or bits > 8:
            raise StqError(f"layer '{layer}': activation quantizer {text} needs 2..8 bits "
                           "(1..8 when keep_negative=False)")
        m = 2**unsigned_bits
        qmin = keep_negative * (-m + int(bool(quantizer.symmetric)))
        return ActFormat(qmin, m - 1, 2.0**integer / m, text)
    raise StqError(f"layer '{layer}': activation quantizer {text} is not supported; "
                   f"supported: {', '.join(SUPPORTED_ACT_QUANTIZERS)}")


@dataclass
class QuantWeights:
    """Integer weights (same layout as the Keras kernel) and the real scale per output channel."""

    kind: str  # "ternary" (values -1,0,1), "binary" (values -1,1) or "int8"
    ints: np.ndarray  # int8 array, Keras kernel layout
    scale: np.ndarray  # float64 per output channel (last axis of the Keras kernel)


def quantize_kernel(layer: str, quantizer: object | None, kernel: np.ndarray) -> QuantWeights:
    """Run the QKeras kernel quantizer (inference branch) and split it into ints x scale."""
    import tensorflow as tf

    if quantizer is None:
        raise StqError(f"layer '{layer}': the kernel has no quantizer (float weights); "
                       f"supported kernel quantizers: {', '.join(SUPPORTED_KERNEL_QUANTIZERS)}")
    kind = _name(quantizer)
    text = str(quantizer)
    if kind not in ("ternary", "stochastic_ternary", "binary", "quantized_bits"):
        raise StqError(f"layer '{layer}': kernel quantizer {text} cannot be exported; "
                       f"supported: {', '.join(SUPPORTED_KERNEL_QUANTIZERS)}")
    if kind == "binary" and getattr(quantizer, "use_01", False):
        raise StqError(f"layer '{layer}': kernel quantizer {text} (use_01) cannot be exported; "
                       "use binary() with values -1/+1")
    if kind == "quantized_bits" and int(quantizer.bits) > 8:
        raise StqError(f"layer '{layer}': kernel quantizer {text} has {quantizer.bits} bits; "
                       "at most 8 are supported")
    # The inference branch (learning phase 0), exactly as model.predict runs it.
    wq = np.asarray(quantizer(tf.constant(kernel, dtype=tf.float32)), dtype=np.float64)
    cout = kernel.shape[-1]
    scale = getattr(quantizer, "scale", None)
    if kind == "quantized_bits":
        unsigned_bits = int(quantizer.bits) - int(bool(quantizer.keep_negative))
        step = 2.0 ** int(quantizer.integer) / 2.0**unsigned_bits
        base = np.ones(cout) if scale is None else _per_channel(scale, cout)
        chan = base * step
        lo, hi = -128, 127
        wkind = "int8"
    else:
        chan = np.ones(cout) if scale is None else _per_channel(scale, cout)
        lo, hi = (-1, 1)
        wkind = "ternary" if kind != "binary" else "binary"
    chan = np.where(chan == 0, 1.0, chan)
    ints = np.round(wq / chan)
    err = np.abs(wq - ints * chan)
    tol = 1e-5 * np.abs(chan) + 1e-12
    bad = (err > tol) | (ints < lo) | (ints > hi)
    if wkind == "binary":
        bad |= ints == 0
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        expect = {"ternary": "alpha * {-1, 0, +1}", "binary": "alpha * {-1, +1}",
                  "int8": "scale * int8"}[wkind]
        raise StqError(
            f"layer '{layer}': quantized weights are not {wkind} (kernel quantizer {text}): "
            f"weight {idx} = {wq[idx]:.6g} is not {expect} with channel scale "
            f"{chan[idx[-1]]:.6g}")
    return QuantWeights(wkind, ints.astype(np.int8), chan.astype(np.float64))


def _per_channel(scale: object, cout: int) -> np.ndarray:
    arr = np.asarray(scale, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        return np.full(cout, float(arr[0]))
    if arr.size != cout:
        raise StqError(f"quantizer scale has {arr.size} entries for {cout} output channels")
    return arr
