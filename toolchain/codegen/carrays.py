"""C array records and literals: what weights.c declares, with its exact byte sizes."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


def cname(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", text)


def literal(v: int, ctype: str) -> str:
    v = int(v)
    if ctype == "int64_t":
        return f"INT64_C({v})"
    if ctype == "int32_t" and v == -(2**31):
        return "INT32_MIN"
    return str(v)


@dataclass
class CArray:
    symbol: str
    ctype: str
    values: np.ndarray
    comment: str

    @property
    def count(self) -> int:
        return max(1, int(self.values.size))

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * {"uint8_t": 1, "int8_t": 1, "int32_t": 4,
                                        "int64_t": 8}[self.ctype]

    @property
    def lines(self) -> list[str]:
        per = {"uint8_t": 16, "int8_t": 16, "int32_t": 8, "int64_t": 4}[self.ctype]
        vals = [literal(v, self.ctype) for v in self.values.reshape(-1)] or ["0"]
        return [", ".join(vals[i:i + per]) + "," for i in range(0, len(vals), per)]
