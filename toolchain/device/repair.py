"""Repair of a damaged frame from its CRC-32: one flipped bit, one inserted byte or one
dropped byte in the COBS bytes between two delimiters (docs/protocol.md, "Repair").

The check ``f(payload) = crc32(payload[:-4]) ^ le32(payload[-4:])`` is affine over GF(2), so
changing payload byte ``p`` by ``x`` changes ``f`` by a value ``L_p(x)`` that does not depend on
the rest of the payload. One table per payload length maps each ``L_p(x)`` back to ``(p, x)``:
a frame with one wrong byte is corrected with one CRC and one lookup. For a dropped byte, each
place it may have been dropped from is tried with a placeholder there (a data byte's value does
not change COBS's structure), and the table names the byte that makes the CRC right. An
inserted byte is found by removing each byte in turn, a flipped COBS code byte by flipping each
code byte's bits.

Each repair is a *candidate*; a frame is repaired only when exactly one payload explains it.
How much a repair weakens the CRC (a frame with more damage "repaired" into a wrong one) is
the number of payloads tried times 2^-32 for a flipped bit, an inserted byte or a code byte
(about 10^-7 per damaged frame), but 255 values per place for a dropped byte (about 3 x 10^-6):
:attr:`Repair.strong` says which kind it was, so a caller may ask for confirmation of a weak
one before it records a result from it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

from toolchain.device import protocol as P
from toolchain.device.protocol import cobs_decode

_PLACEHOLDER = 0x01
MAX_ENCODED = 96  # longer runs of bytes are not a frame of this protocol: not tried
REPLY_TYPES = frozenset({P.T_ERROR, *(t | P.T_REPLY for t in (
    P.T_INFO, P.T_UPLOAD, P.T_RUN, P.T_QUIT, P.T_RESULT))})


@dataclass(frozen=True)
class Repair:
    payload: bytes
    kind: str  # "intact", "bit", "code", "insert", "drop"

    @property
    def strong(self) -> bool:
        """True unless the repair solved for a whole byte (a dropped one)."""
        return self.kind != "drop"


def check(payload: bytes) -> int:
    """0 for a payload whose CRC-32 is right, else its syndrome."""
    n = len(payload) - 4
    return (zlib.crc32(payload[:n]) & 0xFFFFFFFF) ^ struct.unpack_from("<I", payload, n)[0]


@lru_cache(maxsize=128)
def _tables(m: int) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
    """For payloads of ``m`` bytes: syndrome -> (position, xor) for every one-bit change, and
    for every one-byte change (ambiguous syndromes left out). Built from the 8 one-bit
    syndromes of each position (the map is linear)."""
    n = m - 4
    base = check(bytes(m))
    bits: dict[int, tuple[int, int] | None] = {}
    whole: dict[int, tuple[int, int] | None] = {}
    for p in range(m):
        vec = [0] * 256
        for b in range(8):
            x = 1 << b
            if p < n:
                buf = bytearray(m)
                buf[p] = x
                vec[x] = check(bytes(buf)) ^ base
            else:
                vec[x] = x << (8 * (p - n))
            s = vec[x]
            bits[s] = None if s in bits else (p, x)
        for x in range(1, 256):
            low = x & -x
            if x != low:
                vec[x] = vec[x ^ low] ^ vec[low]
            s = vec[x]
            whole[s] = None if s in whole else (p, x)
    return ({k: v for k, v in bits.items() if v is not None},
            {k: v for k, v in whole.items() if v is not None})


def _decode_tracking(data: bytes, j: int) -> tuple[bytes, int]:
    """COBS-decode ``data``; also where input byte ``j`` went (-1: it was a code byte)."""
    out = bytearray()
    i, n, where = 0, len(data), -1
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            raise ValueError("malformed COBS")
        if i < j < i + code:
            where = len(out) + (j - i - 1)
        out += data[i + 1 : i + code]
        i += code
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out), where


def _chain(data: bytes) -> list[int]:
    """Positions of the code bytes as a decoder walks ``data`` (up to where it breaks)."""
    out, i = [], 0
    while i < len(data) and data[i] != 0:
        out.append(i)
        i += data[i]
    return out


def _chain_ok(data: bytes) -> bool:
    """The chain of code bytes ends exactly at the end (what COBS decoding needs; cheaper)."""
    i, n = 0, len(data)
    while i < n:
        if data[i] == 0:
            return False
        i += data[i]
    return i == n


def _landings(data: bytes) -> list[int]:
    """Where a decoder walking ``data`` expects a code byte, the end included."""
    out = _chain(data)
    end = out[-1] + data[out[-1]] if out else 0
    if end <= len(data):
        out.append(end)
    return out


def candidates(encoded: bytes, min_payload: int = 8,
               types: frozenset[int] | None = None) -> dict[bytes, str]:
    """Every payload one error away from ``encoded`` whose CRC-32 is right, of this protocol
    version (and of one of ``types``, if given), with its kind."""
    found: dict[bytes, str] = {}
    if len(encoded) > MAX_ENCODED:
        return found

    def add(payload: bytes, kind: str) -> None:
        if len(payload) >= min_payload and payload[0] == P.VERSION and (
                types is None or payload[1] in types):
            found.setdefault(payload, kind)

    # the COBS structure intact: a flipped bit in a data byte or the CRC
    try:
        payload = cobs_decode(encoded)
    except ValueError:
        payload = b""
    if len(payload) >= min_payload:
        s = check(payload)
        if s == 0:
            return {payload: "intact"} if payload[0] == P.VERSION else {}
        hit = _tables(len(payload))[0].get(s)
        if hit is not None:
            fixed = bytearray(payload)
            fixed[hit[0]] ^= hit[1]
            if fixed[hit[0]] != 0:  # a zero would have been a code byte
                add(bytes(fixed), "bit")
    def whole(cand: bytes, kind: str) -> None:
        """``cand`` as it stands, when its chain of code bytes is whole (then it decodes)."""
        if _chain_ok(cand):
            payload = cobs_decode(cand)
            if len(payload) >= min_payload and check(payload) == 0:
                add(payload, kind)

    # a flipped bit in a code byte
    for c in _chain(encoded):
        for b in range(8):
            v = encoded[c] ^ (1 << b)
            if v != 0:
                whole(encoded[:c] + bytes([v]) + encoded[c + 1 :], "code")
    # an inserted byte
    for j in range(len(encoded)):
        whole(encoded[:j] + encoded[j + 1 :], "insert")
    # a dropped byte: a data byte (solved from the table) ...
    for j in range(len(encoded) + 1):
        cand = encoded[:j] + bytes([_PLACEHOLDER]) + encoded[j:]
        if not _chain_ok(cand):
            continue
        payload, p = _decode_tracking(cand, j)
        if p >= 0 and len(payload) >= min_payload:
            fixed = bytearray(payload)
            fixed[p] = 0
            hit = _tables(len(fixed))[1].get(check(bytes(fixed)))
            if hit is not None and hit[0] == p:
                fixed[p] = hit[1]
                add(bytes(fixed), "drop")
    # ... or a code byte, which can only have been where the chain of code bytes lands
    for j in _landings(encoded):
        for v in range(1, min(255, len(encoded) + 1 - j) + 1):
            whole(encoded[:j] + bytes([v]) + encoded[j:], "drop")
    return found


def repair(encoded: bytes, min_payload: int = 8,
           types: frozenset[int] | None = None) -> Repair | None:
    """The one payload that one flipped bit, inserted byte or dropped byte explains, or None
    (no candidate, or more than one)."""
    found = candidates(encoded, min_payload, types)
    if len(found) != 1:
        return None
    (payload, kind), = found.items()
    return Repair(payload, kind)
