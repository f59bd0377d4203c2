"""TFLite quantization parameters, computed once by the converter (docs/semantics.md, TFLite
section 2): QuantizeMultiplier, fused activation ranges, per-channel multipliers, padding, and
the ADD / MEAN / SOFTMAX parameters TFLite's Prepare functions derive. Nothing here runs at
inference; the reference and the C read the results from the artifact."""

from __future__ import annotations

import math

import numpy as np

INT32_MAX = 2**31 - 1
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
ADD_LEFT_SHIFT = 20  # int8 ADD (kernels/add.cc)


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound of a Python float (exact)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """quantization_util.cc QuantizeMultiplier: m ~ M * 2**(s - 31), M in [2**30, 2**31)."""
    m = float(m)
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """kernel_util.cc CalculateActivationRangeQuantized for int8."""
    s = np.float32(scale)

    def q(f: float) -> int:
        v = float(np.float32(f) / s)  # the quotient in float32, then std::round
        return int(zero_point) + round_half_away(v)

    if act == ACT_NONE:
        return -128, 127
    if act == ACT_RELU:
        return max(-128, q(0.0)), 127
    if act == ACT_RELU6:
        return max(-128, q(0.0)), min(127, q(6.0))
    if act == ACT_RELU_N1_TO_1:
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise ValueError(f"fused activation {act}")


def per_channel(in_scale: float, w_scales: np.ndarray, out_scale: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """kernel_util.cc PopulateConvolutionQuantizationParams: double products per channel."""
    pairs = [quantize_multiplier(float(np.float32(in_scale)) * float(ws)
                                 / float(np.float32(out_scale)))
             for ws in np.asarray(w_scales, dtype=np.float32)]
    return (np.array([m for m, _ in pairs], dtype=np.int32),
            np.array([s for _, s in pairs], dtype=np.int32))


def fc_per_tensor(in_scale: float, w_scale: float, out_scale: float) -> tuple[int, int]:
    """kernel_util.cc GetQuantizedConvolutionMultipler: the product is float32."""
    return quantize_multiplier(float(np.float32(in_scale) * np.float32(w_scale))
                               / float(np.float32(out_scale)))


def padding(stride: int, dilation: int, size: int, k: int, same: bool) -> tuple[int, int, int]:
    """padding.h ComputePaddingHeightWidth: (output size, pad before, pad after)."""
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride if same else (size + stride - eff) // stride
    total = max(0, (out - 1) * stride + eff - size)
    return out, total // 2, total - total // 2


def add_params(s1: float, s2: float, so: float) -> tuple[list[int], list[int]]:
    """add.cc Prepare (int8): multipliers and shifts of input 1, input 2 and the output."""
    twice_max = 2.0 * max(float(s1), float(s2))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(so)))
    return [m1, m2, mo], [sh1, sh2, sho]


def mean_params(s_in: float, s_out: float, n: int) -> tuple[int, int]:
    """reduce.cc PrepareMeanOrSum + QuantizedMeanOrSum: 1/n folded into the multiplier."""
    mult, shift = quantize_multiplier(float(s_in) / float(s_out))
    sh = min(int(n).bit_length() - 1, 32, 31 + shift)
    return (mult << sh) // n, shift - sh


def softmax_params(beta: float, s_in: float) -> tuple[int, int, int]:
    """quantization_util.cc PreprocessSoftmaxScaling and CalculateInputRadius (5 integer bits):
    (input multiplier, input left shift, diff_min)."""
    real = min(float(np.float32(beta)) * float(s_in) * (1 << 26), float(INT32_MAX))
    mult, lshift = quantize_multiplier(real)
    max_in = 1.0 * 31 * (1 << 26) / (1 << lshift)
    return mult, lshift, -int(math.floor(max_in))


def requantize_params(s_in: float, s_out: float) -> tuple[int, int]:
    """QUANTIZE int8 -> int8 and standalone RELU/RELU6: QuantizeMultiplier(S_in / S_out)."""
    return quantize_multiplier(float(s_in) / float(s_out))
