"""32-bit requantization where it is proven exact (docs/semantics.md, "32-bit requantization").

The exact requantization is q = clamp(rhe((acc * mult + offset) / 2^shift), lo, hi) in int64.
For a layer whose accumulator range is small (e.g. a depthwise 3x3 on 8-bit inputs), this finds
per channel an int32 (m, o, s) with clamp(floor((acc * m + o) / 2^s), lo, hi) == q for EVERY
integer acc the layer can produce (the whole interval between the smallest and largest
accumulator its weights and input range allow) and |acc * m| + |o| < 2^31, checking each
candidate on that whole interval. A layer with a second (residual) input res gets
(m, o, s, m2) with clamp(floor((acc * m + res * m2 + o) / 2^s), lo, hi) == q checked on every
pair of such an accumulator and a value of the residual tensor's range. A channel without such
constants keeps the 64-bit requantization (for the whole layer).
"""

from __future__ import annotations

import numpy as np

from toolchain.ir.requant import rhe_shift

LIMIT = 2**31 - 1
MAX_SPAN = 1 << 22  # accumulators enumerated per channel, at most


def acc_range(w_taps: np.ndarray, xlo: int, xhi: int) -> tuple[int, int]:
    """Smallest and largest sum of w * x over the taps, x in [xlo, xhi] (0 included: padding)."""
    w = np.asarray(w_taps, dtype=np.int64).reshape(-1)
    lo, hi = min(xlo, 0), max(xhi, 0)
    a, b = w * lo, w * hi
    return int(np.minimum(a, b).sum()), int(np.maximum(a, b).sum())


def channel_constants(mult: int, offset: int, shift: int, clamp: tuple[int, int],
                      amin: int, amax: int, m_max: int = LIMIT, sub: int = 0
                      ) -> tuple[int, int, int] | None:
    """(m, o, s) reproducing the exact requantization of one channel on [amin, amax], or None;
    |m| <= m_max. With ``sub``, the constants reproduce the result minus ``sub`` (clamped to
    [clamp_min - sub, clamp_max - sub])."""
    k = residual_channel_constants(mult, 0, offset, shift, clamp, (amin, amax), (0, 0), m_max,
                                   sub)
    return None if k is None else k[:3]


def _offset_bounds(want: np.ndarray, t: np.ndarray, s: int, lo: int, hi: int
                   ) -> tuple[int, int]:
    """The o with floor((t + o) / 2^s) == want everywhere: o in [want * 2^s - t,
    (want + 1) * 2^s - t - 1]; at a clamp bound only one side matters (the result is clamped
    anyway)."""
    o_lo = np.where(want > lo, want * 2**s - t, np.iinfo(np.int64).min)
    o_hi = np.where(want < hi, (want + 1) * 2**s - t - 1, np.iinfo(np.int64).max)
    return int(o_lo.max()), int(o_hi.min())


def residual_channel_constants(mult: int, mult2: int, offset: int, shift: int,
                               clamp: tuple[int, int], accs: tuple[int, int],
                               ress: tuple[int, int], m_max: int = LIMIT, sub: int = 0
                               ) -> tuple[int, int, int, int] | None:
    """(m, o, s, m2) with clamp(floor((acc * m + res * m2 + o) / 2^s)) equal to the exact
    requantization of acc * mult + res * mult2 + offset (minus ``sub``) for EVERY pair of an
    accumulator in ``accs`` and a second input in ``ress`` (closed intervals, at most MAX_SPAN
    pairs), with |acc * m| + |res * m2| + |o| < 2^31 there, or None; |m| <= m_max. A single
    input is ress = (0, 0) with mult2 = 0."""
    (amin, amax), (rmin, rmax) = accs, ress
    if (amax - amin + 1) * (rmax - rmin + 1) > MAX_SPAN:
        return None
    acc = np.arange(amin, amax + 1, dtype=np.int64)[:, None]
    res = np.arange(rmin, rmax + 1, dtype=np.int64)[None, :]
    want = np.clip(rhe_shift(acc * mult + res * mult2 + offset, np.int64(shift)), *clamp) - sub
    lo, hi = clamp[0] - sub, clamp[1] - sub
    amag, rmag = max(abs(amin), abs(amax), 1), max(abs(rmin), abs(rmax))
    edge = sorted({0, res.shape[1] // 2, res.shape[1] - 1})  # a cheap first test of a candidate
    for s in range(min(shift, 30), -1, -1):
        base, base2 = mult / 2.0 ** (shift - s), mult2 / 2.0 ** (shift - s)
        for m in sorted({int(np.floor(base)), int(np.ceil(base)), round(base)}):
            for m2 in sorted({int(np.floor(base2)), int(np.ceil(base2)), round(base2)}):
                wide = amag * abs(m) + rmag * abs(m2)
                if wide >= LIMIT or abs(m) > m_max:
                    continue
                cols = res[:, edge]
                if len(edge) < res.shape[1]:
                    b_lo, b_hi = _offset_bounds(want[:, edge], acc * m + cols * m2, s, lo, hi)
                    if b_lo > b_hi:
                        continue
                t = acc * m + res * m2
                best_lo, best_hi = _offset_bounds(want, t, s, lo, hi)
                if best_lo > best_hi:
                    continue
                o = max(best_lo, min(best_hi, round(offset / 2.0 ** (shift - s)) - sub * 2**s))
                if wide + abs(o) >= LIMIT:
                    o = best_lo if abs(best_lo) < abs(best_hi) else best_hi
                    if wide + abs(o) >= LIMIT:
                        continue
                got = np.clip((t + o) >> s, lo, hi)
                if np.array_equal(got, want):
                    return m, o, s, m2
    return None


def layer_constants(rows: np.ndarray, mult: np.ndarray, offset: np.ndarray, shift: np.ndarray,
                    clamp: tuple[int, int], xlo: int, xhi: int, sub: int = 0,
                    residual: tuple[np.ndarray, int, int] | None = None) -> np.ndarray | None:
    """Per output channel (m, o, s) as an int32 array [m0, o0, s0, m1, ...], ``rows`` holding
    each channel's weights (one row per channel), or None when some channel has none
    (``sub``: see channel_constants). With ``residual`` = (mult2, rmin, rmax), a second input
    in [rmin, rmax]: (m, o, s, m2) per channel (residual_channel_constants)."""
    out = []
    for c, row in enumerate(np.asarray(rows)):
        accs = acc_range(row, xlo, xhi)
        if residual is None:
            k: tuple[int, ...] | None = channel_constants(int(mult[c]), int(offset[c]),
                                                          int(shift[c]), clamp, *accs, sub=sub)
        else:
            mult2, rmin, rmax = residual
            k = residual_channel_constants(int(mult[c]), int(mult2[c]), int(offset[c]),
                                           int(shift[c]), clamp, accs, (rmin, rmax), sub=sub)
        if k is None:
            return None
        out.extend(k)
    return np.asarray(out, dtype=np.int32)


def node_rows(op: str, weights: np.ndarray) -> np.ndarray:
    """Each output channel's weights as one row: conv OHWI -> (O, H*W*I), depthwise HWC ->
    (C, H*W)."""
    w = np.asarray(weights)
    if op == "depthwise_conv2d":
        return w.reshape(-1, w.shape[-1]).T
    return w.reshape(w.shape[0], -1)
