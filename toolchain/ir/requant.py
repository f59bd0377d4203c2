"""Fixed-point requantization parameters, computed once by the converter.

For an output channel c of an op summing integer inputs ``acc_i`` (the accumulator, and for a
fused residual add the residual tensor) the real value is ``sum_i a_i[c] * acc_i + b[c]``. The
output integer is ``q = clamp(rhe((sum_i acc_i * M_i[c] + O[c]) / 2**S[c]), qmin, qmax)`` where
``rhe`` rounds half to even (as QKeras does) and the sum is exact in int64. The converter
chooses S so that every M fits int32 and the int64 sum cannot overflow for any accumulator in
its worst-case range.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MAX = 2**31 - 1


def requant_params(
    a: list[np.ndarray], b: np.ndarray, step: float, bounds: list[np.ndarray]
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Multipliers (one int32 array per input), shift (int32) and offset (int64) per channel.

    ``a[i][c]`` real scale of input i, ``b[c]`` real offset, ``step`` the output step, and
    ``bounds[i][c]`` the largest |acc_i| possible for channel c.
    """
    channels = len(b)
    mults = [np.zeros(channels, dtype=np.int64) for _ in a]
    shifts = np.zeros(channels, dtype=np.int32)
    offsets = np.zeros(channels, dtype=np.int64)
    for c in range(channels):
        ai = [float(x[c]) / step for x in a]
        bb = float(b[c]) / step
        amax = max(abs(x) for x in ai)
        if amax == 0.0:
            shifts[c] = 0
            offsets[c] = int(np.clip(round(bb), -(2**40), 2**40))
            continue
        s_mult = 30 - math.floor(math.log2(amax))
        reach = sum(abs(x) * float(bd[c]) for x, bd in zip(ai, bounds, strict=True)) + abs(bb)
        s_range = math.floor(61 - math.log2(reach + 1.0))
        s = max(0, min(s_mult, s_range, 62))
        for i, x in enumerate(ai):
            mults[i][c] = max(-INT32_MAX, min(INT32_MAX, round(x * 2.0**s)))
        offsets[c] = round(bb * 2.0**s)
        shifts[c] = s
    return [m.astype(np.int32) for m in mults], shifts, offsets


def rhe_shift(v: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Round-half-to-even of v / 2**shift for int64 arrays (broadcasting shift)."""
    v = np.asarray(v, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    q = v >> shift
    rem = v - (q << shift)  # in [0, 2**shift)
    half = np.where(shift > 0, np.int64(1) << np.maximum(shift - 1, 0), 1)  # shift's shape
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + up
