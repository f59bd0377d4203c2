"""Lookup tables the optimized kernels read, computed here and emitted as C literals."""

from __future__ import annotations


def t2_pairs() -> list[str]:
    """stq_t2_pairs: packed 2-bit byte -> int16 pairs (w0, w2) | (w1, w3) << 32, as literals."""
    def w(b: int, i: int) -> int:
        return {0: 0, 1: 1, 2: -1, 3: 0}[(b >> (2 * i)) & 3]

    def pair(lo: int, hi: int) -> str:
        return f"{(lo & 0xFFFF) | ((hi & 0xFFFF) << 16):08X}"

    return [f"UINT64_C(0x{pair(w(b, 1), w(b, 3))}{pair(w(b, 0), w(b, 2))})" for b in range(256)]


def t2_masks() -> list[str]:
    """stq_t2_masks: packed 2-bit byte -> (0xFF where w != 0) | (0xFF where w = -1) << 32,
    weight i in byte i, as literals."""
    def lanes(b: int, codes: tuple[int, ...]) -> int:
        return sum(0xFF << (8 * i) for i in range(4) if (b >> (2 * i)) & 3 in codes)

    return [f"UINT64_C(0x{lanes(b, (2,)):08X}{lanes(b, (1, 2)):08X})" for b in range(256)]


def base3_lut() -> list[list[int]]:
    return [[(b // 3**j) % 3 - 1 for j in range(5)] for b in range(243)]


def t3_t2() -> list[int]:
    """stq_t3_t2: base-3 byte -> the 2-bit codes of its 5 weights (0, 1 = +1, 2 = -1)."""
    code = {-1: 2, 0: 0, 1: 1}
    return [sum(code[w] << (2 * j) for j, w in enumerate(ws)) for ws in base3_lut()]
