"""Constants of the byte-lane ternary depthwise kernel (templates/optimized/dwconv_fastu.c.j2),
computed and proven exact here once per layer (docs/semantics.md, "Byte-lane depthwise").

The kernel sums four channels at once in the four bytes of a word. With every input in
[0, X], X = 2^k - 1, a tap of weight w adds (x XOR neg) AND nz to its channel's byte: x for
w = +1, X - x for w = -1 (x XOR X), 0 for w = 0. A padded tap reads x = 0 and so adds X for
w = -1 as well, so each channel's byte holds t = acc + X * (number of -1 weights), in
[0, X * (number of non-zero weights)], which must stay below 256 (taps * X <= 255).

The exact output q(acc) (int64 requantization, round half to even, clamp) is then, per
channel, g(clamp(t, a, b)) with g(t) = floor((t * m + o) / 2^s) and no output clamp: [a, b]
is the span of t outside which q is constant (its first and last runs), and (m, o, s) are
int32 constants checked here on every t of [a, b]. The byte clamp of four channels is two
SIMD instruction pairs (USUB8/SEL), which is what makes the kernel cheap. Where q steps by more
than one level per unit at a clamp bound no such g may exist; that group of four channels
then also clamps its outputs, packed as signed bytes (SSUB8/SEL, clamped_channel): six more
instructions per group. A layer where even that fails keeps the int16-pair kernel.
"""

from __future__ import annotations

import numpy as np

from toolchain.ir.requant import rhe_shift
from toolchain.ir.requant32 import channel_constants

LIMIT = 2**31 - 1
M16 = 2**15 - 1


def lane_max(qmin: int, qmax: int) -> int | None:
    """X = 2^k - 1 covering the input range [qmin, qmax] (0 included), or None (negative)."""
    if qmin < 0:
        return None
    return (1 << int(max(qmax, 0)).bit_length()) - 1


def _affine(t: np.ndarray, want: np.ndarray, mult: int, shift: int) -> tuple[int, int, int] | None:
    """int32 (m, o, s), m in int16 (the kernel multiplies with SMLABB/SMLATB), with
    floor((t * m + o) / 2^s) == want on every t (no clamp)."""
    tmag = max(int(np.abs(t).max()), 255)
    for s in range(min(shift, 30), -1, -1):
        base = mult / 2.0 ** (shift - s)
        for m in sorted({int(np.floor(base)), int(np.ceil(base)), round(base), 0}):
            if tmag * abs(m) >= LIMIT or abs(m) > M16:
                continue
            tm = t * m
            o_lo, o_hi = int((want * 2**s - tm).max()), int(((want + 1) * 2**s - tm - 1).min())
            if o_lo > o_hi:
                continue
            o = o_lo if abs(o_lo) <= abs(o_hi) else o_hi
            if tmag * abs(m) + abs(o) >= LIMIT:
                continue
            if np.array_equal((tm + o) >> s, want):
                return m, o, s
    return None


def _runs(want: np.ndarray) -> tuple[int, int]:
    """[a, b]: the span of t outside which want is constant (its first and last runs)."""
    first, last = np.nonzero(want != want[0])[0], np.nonzero(want != want[-1])[0]
    return (0, 0) if first.size == 0 else (int(first[0]) - 1, int(last[-1]) + 1)


def _want(w: np.ndarray, mult: int, offset: int, shift: int, clamp: tuple[int, int],
          x: int) -> np.ndarray:
    """The exact outputs of one channel with taps w for every byte sum t, 0..X * nnz."""
    nneg, nnz = int((w == -1).sum()), int((w != 0).sum())
    t = np.arange(0, x * nnz + 1, dtype=np.int64)
    return np.clip(rhe_shift((t - x * nneg) * mult + offset, np.int64(shift)), *clamp)


def channel(w: np.ndarray, mult: int, offset: int, shift: int, clamp: tuple[int, int],
            x: int) -> tuple[int, int, int, int, int] | None:
    """(a, b, m, o, s) of one channel with taps w, exact without an output clamp, or None."""
    want = _want(w, mult, offset, shift, clamp, x)
    a, b = _runs(want)
    k = _affine(np.arange(a, b + 1, dtype=np.int64), want[a:b + 1], mult, shift)
    return None if k is None else (a, b, *k)


def clamped_channel(w: np.ndarray, mult: int, offset: int, shift: int, clamp: tuple[int, int],
                    x: int) -> tuple[int, int, int, int, int] | None:
    """(a, b, m, o, s) of one channel with taps w, exact with an output clamp applied to
    signed bytes: clamp((clamp(t, a, b) * m + o) >> s, lo, hi) == q with every value before
    the clamp in -128..127; None when there is none (or lo, hi are not signed bytes)."""
    lo, hi = clamp
    if lo < -128 or hi > 127:
        return None
    want = _want(w, mult, offset, shift, clamp, x)
    a, b = _runs(want)
    if a == b:  # a constant output
        return 0, 0, 0, int(want[0]), 0
    nneg = int((w == -1).sum())
    k = channel_constants(mult, offset - x * nneg * mult, shift, clamp, a, b, M16)
    if k is None:
        return None
    m, o, s = k
    g = (np.arange(a, b + 1, dtype=np.int64) * m + o) >> s
    return (a, b, m, o, s) if g.min() >= -128 and g.max() <= 127 else None


def tap_order(k_h: int, k_w: int) -> list[int]:
    """The order of the taps in the table: row by row, and in a 3x3 window each row's middle,
    right, then left tap (the assembly reads the left one last, moving its row pointer on)."""
    cols = [1, 2, 0] if (k_h, k_w) == (3, 3) else list(range(k_w))
    return [ky * k_w + kx for ky in range(k_h) for kx in cols]


def _group(rows: np.ndarray, order: list[int], mult: np.ndarray, offset: np.ndarray,
           shift: np.ndarray, clamp: tuple[int, int], x: int) -> tuple[list[int], bool] | None:
    """One group of 4 channels (rows: their weights, one row each): its table words and
    whether it needs output clamps; None when a channel has no constants at all. A group with
    clamps lists its channels' (m, o, s) in the order 0, 2, 1, 3 and ends with lo and hi in
    every byte."""
    args = [(rows[i], int(mult[i]), int(offset[i]), int(shift[i]), clamp, x) for i in range(4)]
    out = []
    for tap in order:
        out.append(sum((x if v == -1 else 0) << (8 * i) for i, v in enumerate(rows[:, tap])))
        out.append(sum((0xFF if v != 0 else 0) << (8 * i) for i, v in enumerate(rows[:, tap])))
    lanes = [channel(*a) for a in args]
    clamped = not all(k is not None for k in lanes)
    if clamped:
        lanes = [clamped_channel(*a) for a in args]
    ks = [k for k in lanes if k is not None]
    if len(ks) < 4:
        return None
    out.append(sum(k[0] << (8 * i) for i, k in enumerate(ks)))  # a, one byte per channel
    out.append(sum(k[1] << (8 * i) for i, k in enumerate(ks)))  # b
    for i in (0, 2, 1, 3) if clamped else range(4):
        out.extend(ks[i][2:])
    if clamped:
        lo, hi = clamp
        out += [(lo & 0xFF) * 0x01010101, (hi & 0xFF) * 0x01010101]
    return out, clamped


def lane_constants(weights: np.ndarray, mult: np.ndarray, offset: np.ndarray,
                   shift: np.ndarray, clamp: tuple[int, int], qmin: int, qmax: int
                   ) -> np.ndarray | None:
    """The kernel's int32 table for depthwise weights HWC (k_h, k_w, C), C a multiple of 4:
    [X x 0x01010101, F] then per group of 4 channels the (neg, nz) masks of each tap (in
    tap_order), a and b (one byte per channel) and (m, o, s) per channel. A group with a
    channel that has no such constants takes those of clamped_channel instead (its outputs
    clamped as signed bytes: _group). F is the number of such groups; when F > 0 the groups
    come in segments [n, n groups without clamps, f, a group with clamps when f = 1], the last
    with f = 0, so that the kernel tests no group. None when the kernel does not apply
    (negative inputs, taps * X > 255, non-ternary weights) or some channel has neither."""
    w = np.asarray(weights, dtype=np.int64)
    x = lane_max(qmin, qmax)
    taps = w.shape[0] * w.shape[1]
    if x is None or taps * x > 255 or w.shape[2] % 4 or not np.all(np.abs(w) <= 1):
        return None
    rows = w.reshape(taps, -1).T  # (C, taps)
    order = tap_order(w.shape[0], w.shape[1])
    groups = []
    for g in range(w.shape[2] // 4):
        c = slice(4 * g, 4 * g + 4)
        k = _group(rows[c], order, mult[c], offset[c], shift[c], clamp, x)
        if k is None:
            return None
        groups.append(k)
    nclamp = sum(clamped for _, clamped in groups)
    out: list[int] = [x * 0x01010101, nclamp]
    gw = 2 * taps + 14  # words of one group
    run: list[int] = []
    for words, clamped in groups:
        if not nclamp:
            out += words
        elif clamped:
            out += [len(run) // gw, *run, 1, *words]
            run = []
        else:
            run += words
    if nclamp:
        out += [len(run) // gw, *run, 0]
    return np.asarray([v & 0xFFFFFFFF for v in out], dtype=np.uint32).view(np.int32)
