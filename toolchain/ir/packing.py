"""Ternary weight packing.

* ``2bit``: 4 weights per byte, weight i in bits 2*(i%4)..2*(i%4)+1 of byte i//4, codes
  0 -> 0, 1 -> +1, 2 -> -1 (3 is never written).
* ``base3``: 5 weights per byte (1.6 bits each), byte = sum((w_j + 1) * 3**j, j = 0..4) for the
  weights 5*(i//5) .. 5*(i//5)+4; values 0..242.

Unused trailing positions hold weight 0. Conv and dense weights are packed one output channel
per row, each row starting on a byte boundary; depthwise weights are packed as one flat array.
"""

from __future__ import annotations

import numpy as np

from toolchain.errors import StqError

SCHEMES = ("2bit", "base3")
PER_BYTE = {"2bit": 4, "base3": 5}


def packed_size(n: int, scheme: str) -> int:
    return -(-n // PER_BYTE[scheme])


def pack(values: np.ndarray, scheme: str) -> np.ndarray:
    """Pack a 1-D array of -1/0/+1 values (any length) into uint8."""
    v = np.asarray(values).reshape(-1).astype(np.int64)
    if not np.isin(v, (-1, 0, 1)).all():
        raise StqError("only -1, 0 and +1 can be packed as ternary weights")
    per = _per(scheme)
    n = v.size
    padded = np.zeros(packed_size(n, scheme) * per, dtype=np.int64)
    padded[:n] = v
    groups = padded.reshape(-1, per)
    if scheme == "2bit":
        codes = np.where(groups == -1, 2, groups)
        out = (codes << (2 * np.arange(4))).sum(axis=1)
    else:
        out = ((groups + 1) * (3 ** np.arange(5))).sum(axis=1)
    return out.astype(np.uint8)


def unpack(data: np.ndarray, n: int, scheme: str) -> np.ndarray:
    """Inverse of :func:`pack`: the first ``n`` weights as int8."""
    _per(scheme)
    b = np.asarray(data, dtype=np.int64).reshape(-1)
    if b.size != packed_size(n, scheme):
        raise StqError(f"{b.size} packed bytes cannot hold exactly {n} weights ({scheme})")
    if scheme == "2bit":
        codes = (b[:, None] >> (2 * np.arange(4))) & 3
        if (codes == 3).any():
            raise StqError("invalid 2-bit weight code 3")
        vals = np.where(codes == 2, -1, codes)
    else:
        if (b > 242).any():
            raise StqError("invalid base-3 weight byte (> 242)")
        vals = (b[:, None] // (3 ** np.arange(5))) % 3 - 1
    return vals.reshape(-1)[:n].astype(np.int8)


def pack_rows(w2d: np.ndarray, scheme: str) -> tuple[np.ndarray, int]:
    """Pack each row separately (rows start on a byte boundary); return bytes and row stride."""
    rows = [pack(r, scheme) for r in np.asarray(w2d)]
    stride = packed_size(w2d.shape[1], scheme)
    return np.concatenate(rows) if rows else np.zeros(0, np.uint8), stride


def _per(scheme: str) -> int:
    if scheme not in SCHEMES:
        raise StqError(f"packing {scheme!r} is not one of {', '.join(SCHEMES)}")
    return PER_BYTE[scheme]
