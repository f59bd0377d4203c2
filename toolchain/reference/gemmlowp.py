"""gemmlowp / TFLite fixed-point primitives on int64 NumPy arrays holding int32 values
(docs/semantics.md, TFLite section 1). The C twins are in templates/support/gemmlowp.c.j2."""

from __future__ import annotations

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_EXP_MULTS = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242))


def wrap32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap to int32."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C++ division truncates toward zero
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, q).astype(np.int64)


def rdbp(x: np.ndarray, e: np.ndarray | int) -> np.ndarray:
    """RoundingDivideByPOT: x / 2**e rounded half away from zero (0 <= e <= 31)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> e) + ((x & mask) > threshold).astype(np.int64)


def mbqm(x: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (double rounding, TFLITE_SINGLE_ROUNDING undefined)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    x = wrap32(np.asarray(x, dtype=np.int64) * (np.int64(1) << left))
    return rdbp(srdhm(x, mult), np.maximum(-shift, 0))


def sat_shl(x: np.ndarray, e: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT<+e>."""
    thr = (1 << (31 - e)) - 1
    return np.where(x > thr, INT32_MAX, np.where(x < -thr, INT32_MIN, x << e))


def _exp_quarter(a: np.ndarray) -> np.ndarray:
    """exp_on_interval_between_negative_one_quarter_and_0_excl (Q0.31)."""
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    t = wrap32(srdhm(wrap32(rdbp(x4, 2) + x3), 715827883) + x2)
    c = 1895147668
    return wrap32(c + srdhm(c, wrap32(x + rdbp(t, 1))))


def exp_on_negative_values_q5(a: np.ndarray) -> np.ndarray:
    """exp_on_negative_values for FixedPoint<int32, 5>: Q5.26 in, Q0.31 out."""
    a_mod = wrap32((a & ((1 << 24) - 1)) - (1 << 24))
    result = _exp_quarter(sat_shl(a_mod, 5))
    remainder = wrap32(a_mod - a)
    for exponent, mult in _EXP_MULTS:
        result = np.where((remainder & (1 << (26 + exponent))) != 0, srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def reciprocal_q12(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """common.h GetReciprocal(x, 12): (Q0.31 scale, number of bits over unit)."""
    x = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    _, e = np.frexp(x.astype(np.float64))
    clz = np.where(x == 0, 32, 32 - e).astype(np.int64)
    z = wrap32((x << clz) - (1 << 31))
    s = z + INT32_MAX  # RoundingHalfSum(z, One)
    half = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))
    r = wrap32(1515870810 + srdhm(half, -1010580540))
    for _ in range(3):
        r = wrap32(r + sat_shl(srdhm(r, wrap32((1 << 29) - srdhm(half, r))), 2))
    return sat_shl(r, 1), 12 - clz


def trunc_div(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """C++ integer division (toward zero), b > 0."""
    a = np.asarray(a, dtype=np.int64)
    return np.where(a >= 0, a // b, -((-a) // b))
