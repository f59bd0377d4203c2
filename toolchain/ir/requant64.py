"""A cheaper exact form of the 64-bit requantization (docs/semantics.md), proven per layer.

q = clamp(round_half_even((acc * mult + offset) / 2^shift), lo, hi). When no accumulator the
layer can produce makes (acc * mult + offset) mod 2^shift exactly 2^(shift - 1) (no tie), the
rounding is floor((acc * mult + offset + 2^(shift - 1)) / 2^shift); with shift >= 32 that is
the high word of the int64 sum shifted right by shift - 32: one multiply-accumulate into a
register pair (SMLAL) and one shift, instead of the tie-breaking sequence. This module checks
every accumulator of each channel's range (toolchain/ir/requant32.acc_range) for ties.
"""

from __future__ import annotations

import numpy as np

from toolchain.ir.requant32 import MAX_SPAN, acc_range

SPAN = 4 * MAX_SPAN  # accumulators checked per channel, at most


def tie_free_constants(rows: np.ndarray, mult: np.ndarray, offset: np.ndarray,
                       shift: np.ndarray, xlo: int, xhi: int) -> np.ndarray | None:
    """Per output channel [mult, low and high words of offset + 2^(shift - 1), shift - 32]
    (int32) with ``rows`` holding each channel's weights (a shift below 32 is raised to 32,
    scaling mult and offset), or None when some channel's multiplier then leaves int32, its
    range is wider than SPAN or it has a tie."""
    out: list[int] = []
    for c, row in enumerate(np.asarray(rows)):
        s, m, o = int(shift[c]), int(mult[c]), int(offset[c])
        if s < 32:  # the same value with shift 32: mult and offset times 2^(32 - shift)
            m, o, s = m << (32 - s), o << (32 - s), 32
        amin, amax = acc_range(row, xlo, xhi)
        if abs(m) >= 2**31 or amax - amin + 1 > SPAN:
            return None
        v = np.arange(amin, amax + 1, dtype=np.int64) * m + o
        if np.any((v & ((1 << s) - 1)) == 1 << (s - 1)):
            return None
        r = o + (1 << (s - 1))
        out += [m, r & 0xFFFFFFFF, (r >> 32) & 0xFFFFFFFF, s - 32]
    return np.asarray(out, dtype=np.uint64).astype(np.uint32).view(np.int32)
