"""Per-channel constants of the USADA8 ternary conv (docs/semantics.md, "USADA8 ternary conv"),
computed once by the converter instead of on every call.

The kernel sums ``acc' = acc + 255 * (number of -1 weights)`` (a -1 weight adds 255 - x). With
``b`` that constant of the channel:

- 64-bit requantization: ``offset' = offset - b * mult + r`` (``r = 2^(shift-1) - 1``, the
  round-half-even term of docs/semantics.md), so the kernel computes ``acc' * mult + offset'``
  (+ ``res * mult2``) and rounds it with ``bit = 2^shift`` alone;
- 32-bit requantization: requant32's constants ``(m, o, s)`` of the result minus clamp_min
  (proven on every accumulator of the channel: ``clamp(floor((acc * m + o) / 2^s), 0,
  clamp_max - clamp_min) == q(acc) - clamp_min``, ``|acc * m| + |o| < 2^31``), then
  ``o' = o - b * m`` taken modulo 2^32: in wrapping 32-bit arithmetic ``acc' * m + o'`` is
  ``acc * m + o`` exactly. The kernel shifts, clamps to ``[0, clamp_max - clamp_min]`` (one
  byte: USAT, then a byte minimum) and adds clamp_min;
- a conv with a fused residual ``res``: (m, o, s, m2) proven on every pair of an accumulator and
  a residual value (``|acc * m| + |res * m2| + |o| < 2^31``), o' as above: the kernel computes
  ``acc' * m + o' + res * m2`` in wrapping 32-bit arithmetic (the same value) and then shifts
  and clamps as without a residual.
"""

from __future__ import annotations

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.requant32 import layer_constants


def neg_bias(rows: np.ndarray) -> np.ndarray:
    """255 * (number of -1 weights) per row (one row per output channel), int64."""
    return 255 * (np.asarray(rows) == -1).sum(axis=1).astype(np.int64)


def fold_offset64(name: str, rows: np.ndarray, mult: np.ndarray, offset: np.ndarray,
                  shift: np.ndarray) -> np.ndarray:
    """offset - b * mult + r per channel (int64); a clear error if it leaves +-2^62."""
    sh = np.asarray(shift, dtype=np.int64)
    r = np.where(sh > 0, (np.int64(1) << np.maximum(sh - 1, 0)) - 1, 0)
    b = neg_bias(rows)
    out = [int(o) - int(bb) * int(m) + int(rr) for o, bb, m, rr in zip(offset, b, mult, r,
                                                                          strict=True)]
    if any(abs(v) >= 2**62 for v in out):
        raise StqError(f"layer '{name}': a folded requantization offset leaves +-2^62")
    return np.asarray(out, dtype=np.int64)


def req32_constants(rows: np.ndarray, mult: np.ndarray, offset: np.ndarray,
                    shift: np.ndarray, clamp: tuple[int, int], xlo: int, xhi: int,
                    residual: tuple[np.ndarray, int, int] | None = None) -> np.ndarray | None:
    """(m, o', s) per channel as int32 [m0, o'0, s0, ...]: requant32's constants of the result
    minus clamp_min (proven on the channel's whole accumulator range, |acc * m| + |o| < 2^31)
    with the -1 weights' constant folded in modulo 2^32; None when some channel has none or
    the clamp range is wider than a byte. With ``residual`` = (mult2, rmin, rmax), the fused
    residual's multiplier and range: (m, o', s, m2) per channel, proven on every pair of an
    accumulator and a residual value (|acc * m| + |res * m2| + |o| < 2^31)."""
    lo, hi = clamp
    if hi - lo > 255:
        return None
    k = layer_constants(rows, mult, offset, shift, clamp, xlo, xhi, sub=lo, residual=residual)
    if k is None:
        return None
    k = k.astype(np.int64).reshape(len(rows), -1)
    k[:, 1] = (k[:, 1] - neg_bias(rows) * k[:, 0] + 2**31) % 2**32 - 2**31
    return k.reshape(-1).astype(np.int32)
