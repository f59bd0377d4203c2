"""Fixed-point requantization: round half to even exactly, multipliers close to the real scale."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.ir.requant import requant_params, rhe_shift


def _rhe(fr: Fraction) -> int:
    return round(fr)  # Python rounds Fractions half to even


@settings(max_examples=500, deadline=None)
@given(st.integers(-(2**62), 2**62), st.integers(0, 62))
def test_rhe_shift_is_round_half_to_even(v: int, s: int) -> None:
    got = int(rhe_shift(np.array([v], dtype=np.int64), np.array([s]))[0])
    assert got == _rhe(Fraction(v, 2**s))


def test_ties_round_to_even_like_tf_round() -> None:
    v = np.array([1, 3, 5, -1, -3, -5], dtype=np.int64)  # x.5 values at shift 1
    assert rhe_shift(v, np.ones(6, dtype=np.int64)).tolist() == [0, 2, 2, 0, -2, -2]


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-6, 1e3), st.floats(-1e3, 1e3), st.integers(-(2**20), 2**20),
       st.floats(2.0**-8, 2.0**2))
def test_params_reproduce_the_real_affine_map(a: float, b: float, acc: int, step: float) -> None:
    bound = float(2**20)
    (m,), shift, offset = requant_params([np.array([a])], np.array([b]), step,
                                         [np.array([bound])])
    assert -(2**31) < int(m[0]) < 2**31
    v = int(acc) * int(m[0]) + int(offset[0])
    assert abs(v) < 2**63  # the worst case fits int64 by construction
    q = int(rhe_shift(np.array([v], dtype=np.int64), shift)[0])
    exact = (a * acc + b) / step
    # the fixed-point map is within a hair of the real one; only near .5 may rounding differ
    assert abs(q - exact) <= 0.5 + 1e-6 * (abs(exact) + 1)


def test_power_of_two_scales_are_exact_including_ties() -> None:
    # a = 2**-1 per accumulator step, b = 0: every odd accumulator is an exact .5 tie
    (m,), shift, offset = requant_params([np.array([0.5])], np.array([0.0]), 1.0,
                                         [np.array([1000.0])])
    acc = np.arange(-9, 10, dtype=np.int64)
    q = rhe_shift(acc * m[0] + offset[0], shift[0])
    np.testing.assert_array_equal(q, np.round(acc / 2.0))


def test_residual_multiplier_shares_the_shift() -> None:
    mults, shift, offset = requant_params([np.array([0.25]), np.array([0.125])],
                                          np.array([0.0]), 0.5,
                                          [np.array([100.0]), np.array([127.0])])
    acc, res = 7, -5
    v = acc * int(mults[0][0]) + res * int(mults[1][0]) + int(offset[0])
    q = int(rhe_shift(np.array([v]), shift)[0])
    assert q == round((0.25 * acc + 0.125 * res) / 0.5)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(0, 15), (-127, 127), (-128, 127), (0, 255),
                                                   (3, 9)]))
def test_usada8_conv_constants_are_exact_on_every_accumulator(seed: int,
                                                              clamp: tuple[int, int]) -> None:
    """toolchain/ir/t2u.py: the USADA8 conv sums acc' = acc + 255 * (-1 weights); its 32-bit
    (m, o', s), evaluated as the Thumb-2 routine does (wrapping multiply-add, arithmetic shift,
    USAT to a byte, byte minimum with the span, plus clamp_min), and its folded 64-bit offsets
    give the requantization of docs/semantics.md for every accumulator the weights allow."""
    from toolchain.ir.requant32 import acc_range
    from toolchain.ir.t2u import fold_offset64, neg_bias, req32_constants

    rng = np.random.default_rng(seed)
    lo, hi = clamp
    oc, taps = 6, int(rng.integers(1, 40))
    rows = rng.integers(-1, 2, size=(oc, taps))
    shift = rng.integers(18, 34, size=oc)
    mult = (2.0 ** shift * (hi - lo + 1) * rng.uniform(0.02, 0.4, oc)
            * rng.choice([-1, 1], oc) / taps).astype(np.int64)
    offset = (2.0 ** shift * rng.uniform(lo - 3, hi + 3, oc)).astype(np.int64)
    k = req32_constants(rows, mult, offset, shift, clamp, 0, 15)
    off64 = fold_offset64("probe", rows, mult, offset, shift)
    b = neg_bias(rows)
    for c in range(oc):
        amin, amax = acc_range(rows[c], 0, 15)
        acc = np.arange(amin, amax + 1, dtype=np.int64)
        want = np.clip(rhe_shift(acc * int(mult[c]) + int(offset[c]), np.int64(shift[c])), lo, hi)
        accp = acc + int(b[c])  # what USADA8 sums
        vr = accp * int(mult[c]) + int(off64[c])  # the 64-bit path: v + r
        bit = np.int64(1) << np.int64(shift[c])
        got64 = np.clip((vr + ((vr & bit) != 0)) >> np.int64(shift[c]), lo, hi)
        np.testing.assert_array_equal(got64, want)
        if k is None:
            continue
        m, o, s = (int(v) for v in k[3 * c:3 * c + 3])
        v32 = ((accp * m + o + 2**31) % 2**32 - 2**31) >> s  # wrapping int32
        got = np.minimum(np.clip(v32, 0, 255), hi - lo) + lo
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ratio", ["one", "quarter", "random"])
def test_residual_usada8_constants_are_exact_on_every_pair(seed: int, ratio: str) -> None:
    """toolchain/ir/t2u.py with a fused residual: (m, o', s, m2) evaluated as the Thumb-2
    routine does (wrapping multiply-adds of acc' = acc + 255 * (-1 weights) and of the
    residual, arithmetic shift, USAT, byte minimum, plus clamp_min) give the requantization of
    docs/semantics.md on every pair of an accumulator the weights allow (inputs 0..15) and a
    residual value; ResNet-8's residual ratios (1 and 1/4 of an output step) among them."""
    from toolchain.ir.requant32 import acc_range
    from toolchain.ir.t2u import neg_bias, req32_constants

    rng = np.random.default_rng(seed)
    lo, hi = [(0, 15), (-128, 127), (0, 255), (3, 9)][seed % 4]
    rlo, rhi = [(0, 15), (-127, 127), (0, 255), (-128, 127)][seed // 2 % 4]
    oc, taps = 5, int(rng.integers(1, 80))
    rows = rng.integers(-1, 2, size=(oc, taps))
    shift = rng.integers(26, 33, size=oc)
    mult = (2.0 ** shift * (hi - lo + 1) * rng.uniform(0.02, 0.4, oc)
            * rng.choice([-1, 1], oc) / (15 * taps)).astype(np.int64)
    offset = (2.0 ** shift * rng.uniform(lo - 3, hi + 3, oc)).astype(np.int64)
    scale = {"one": np.ones(oc), "quarter": np.full(oc, 0.25),
             "random": rng.uniform(0.01, 0.5, oc) * rng.choice([-1, 1], oc)}[ratio]
    mult2 = (2.0 ** shift * scale).astype(np.int64)
    k = req32_constants(rows, mult, offset, shift, (lo, hi), 0, 15, (mult2, rlo, rhi))
    assert k is not None  # (random ratios need not always be provable; these seeds are)
    b = neg_bias(rows)
    res = np.arange(rlo, rhi + 1, dtype=np.int64)[None, :]
    varied = 0
    for c in range(oc):
        amin, amax = acc_range(rows[c], 0, 15)
        acc = np.arange(amin, amax + 1, dtype=np.int64)[:, None]
        v = acc * int(mult[c]) + res * int(mult2[c]) + int(offset[c])
        want = np.clip(rhe_shift(v, np.int64(shift[c])), lo, hi)
        m, o, s, m2 = (int(x) for x in k[4 * c:4 * c + 4])
        wrap = ((acc + int(b[c])) * m + o + res * m2 + 2**31) % 2**32 - 2**31
        got = np.minimum(np.clip(wrap >> s, 0, 255), hi - lo) + lo
        np.testing.assert_array_equal(got, want)
        varied += len(np.unique(want)) > 1
    assert varied > oc // 2  # most channels are not constant


def test_residual_constants_refuse_ties_and_too_many_pairs() -> None:
    """acc * 2^(shift-1) + res * 2^shift makes every odd accumulator an exact .5 tie (round
    half to even goes down at 1/2, up at 3/2): no floor reproduces both, so no constants; nor
    for more pairs of accumulator and residual than requant32.MAX_SPAN."""
    from toolchain.ir.requant32 import MAX_SPAN, residual_channel_constants

    assert residual_channel_constants(1 << 29, 1 << 30, 0, 30, (-128, 127), (-40, 40),
                                      (-20, 20)) is None
    k = residual_channel_constants(1 << 30, 1 << 30, 0, 30, (-128, 127), (-40, 40), (-20, 20))
    assert k is not None and k[0] << (30 - k[2]) == 1 << 30  # a whole step per unit: exact
    assert residual_channel_constants(1 << 30, 1 << 30, 0, 30, (-128, 127),
                                      (0, MAX_SPAN // 256), (-128, 127)) is None
