"""32-bit requantization where it is proven exact (docs/semantics.md, "32-bit requantization").

The exact requantization is q = clamp(rhe((acc * mult + offset) / 2^shift), lo, hi) in int64.
For a layer whose accumulator range is small (e.g. a depthwise 3x3 on 8-bit inputs), this finds
per channel an int32 (m, o, s) with clamp(floor((acc * m + o) / 2^s), lo, hi) == q for EVERY
integer acc the layer can produce (the whole interval between the smallest and largest
accumulator its weights and input range allow) and |acc * m| + |o| < 2^31, checking each
candidate on that whole interval. A layer with a second (residual) input, or a channel without
such constants, keeps the 64-bit requantization.
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
    if amax - amin + 1 > MAX_SPAN:
        return None
    acc = np.arange(amin, amax + 1, dtype=np.int64)
    want = np.clip(rhe_shift(acc * mult + offset, np.int64(shift)), *clamp) - sub
    lo, hi = clamp[0] - sub, clamp[1] - sub
    amag = max(abs(amin), abs(amax), 1)
    for s in range(min(shift, 30), -1, -1):
        base = mult / 2.0 ** (shift - s)
        for m in sorted({int(np.floor(base)), int(np.ceil(base)), round(base)}):
            if amag * abs(m) >= LIMIT or abs(m) > m_max:
                continue
            am = acc * m
            # floor((am + o) / 2^s) == want: o in [want * 2^s - am, (want + 1) * 2^s - am - 1];
            # at a clamp bound only one side matters (the result is clamped anyway)
            o_lo = np.where(want > lo, want * 2**s - am, np.iinfo(np.int64).min)
            o_hi = np.where(want < hi, (want + 1) * 2**s - am - 1, np.iinfo(np.int64).max)
            best_lo, best_hi = int(o_lo.max()), int(o_hi.min())
            if best_lo > best_hi:
                continue
            o = max(best_lo, min(best_hi, round(offset / 2.0 ** (shift - s)) - sub * 2**s))
            if amag * abs(m) + abs(o) >= LIMIT:
                o = best_lo if abs(best_lo) < abs(best_hi) else best_hi
                if amag * abs(m) + abs(o) >= LIMIT:
                    continue
            got = np.clip((am + o) >> s, lo, hi)
            if np.array_equal(got, want):
                return m, o, s
    return None


def layer_constants(rows: np.ndarray, mult: np.ndarray, offset: np.ndarray, shift: np.ndarray,
                    clamp: tuple[int, int], xlo: int, xhi: int, sub: int = 0
                    ) -> np.ndarray | None:
    """Per output channel (m, o, s) as an int32 array [m0, o0, s0, m1, ...], ``rows`` holding
    each channel's weights (one row per channel), or None when some channel has none
    (``sub``: see channel_constants)."""
    out = []
    for c, row in enumerate(np.asarray(rows)):
        amin, amax = acc_range(row, xlo, xhi)
        k = channel_constants(int(mult[c]), int(offset[c]), int(shift[c]), clamp, amin, amax,
                              sub=sub)
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
