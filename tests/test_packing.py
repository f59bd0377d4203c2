"""Ternary packing round-trips for every length, for both schemes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.errors import StqError
from toolchain.ir.packing import pack, pack_rows, packed_size, unpack


@pytest.mark.parametrize("scheme", ["2bit", "base3"])
def test_round_trip_every_length(scheme: str) -> None:
    rng = np.random.default_rng(0)
    for n in range(0, 131):
        w = rng.integers(-1, 2, n)
        packed = pack(w, scheme)
        assert packed.dtype == np.uint8
        assert packed.size == packed_size(n, scheme) == -(-n // (4 if scheme == "2bit" else 5))
        np.testing.assert_array_equal(unpack(packed, n, scheme), w)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), max_size=300), st.sampled_from(["2bit", "base3"]))
def test_round_trip_property(values: list[int], scheme: str) -> None:
    w = np.array(values, dtype=np.int64)
    np.testing.assert_array_equal(unpack(pack(w, scheme), len(w), scheme), w)


def test_documented_bit_layout() -> None:
    # 2-bit: weight i in bits 2*(i%4); codes 0 -> 0, 1 -> +1, 2 -> -1
    assert pack(np.array([1, -1, 0, 1]), "2bit").tolist() == [0b01_00_10_01]
    # base-3: byte = sum((w_j + 1) * 3**j)
    assert pack(np.array([1, -1, 0, 1, -1]), "base3").tolist() == [2 + 0 * 3 + 1 * 9 + 2 * 27]
    assert pack(np.ones(5), "base3").tolist() == [242]


def test_rows_start_on_byte_boundaries() -> None:
    w = np.array([[1, 0, -1, 1, 1], [-1, -1, 0, 0, 1]])
    data, stride = pack_rows(w, "2bit")
    assert stride == 2 and data.size == 4
    np.testing.assert_array_equal(unpack(data[2:4], 5, "2bit"), w[1])


def test_bad_values_and_bytes_are_refused() -> None:
    with pytest.raises(StqError, match="only -1, 0 and \\+1"):
        pack(np.array([0, 2]), "2bit")
    with pytest.raises(StqError, match="code 3"):
        unpack(np.array([0b11], dtype=np.uint8), 1, "2bit")
    with pytest.raises(StqError, match="> 242"):
        unpack(np.array([243], dtype=np.uint8), 5, "base3")
    with pytest.raises(StqError, match="cannot hold exactly"):
        unpack(np.zeros(3, dtype=np.uint8), 5, "2bit")
    with pytest.raises(StqError, match="not one of"):
        pack(np.zeros(3), "1bit")
