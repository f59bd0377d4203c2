"""The framed device protocol (docs/protocol.md), host side: CRC-32, COBS, frames, messages.

A frame on the wire is ``0x00 COBS(payload) 0x00``; the payload is ``version, type, seq (u16
LE), body, CRC-32 (LE) of everything before it``. Replies carry the request's type | 0x80 (or
ERROR) and echo its sequence number. Pure functions only: no I/O here (see link.py).
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field

VERSION = 4
T_INFO, T_UPLOAD, T_RUN, T_QUIT, T_RESULT = 0x01, 0x02, 0x03, 0x04, 0x05
T_ERROR, T_REPLY = 0x7F, 0x80
NO_SEQ = 0xFFFF
WHITEN = 0x55  # UPLOAD data bytes go XOR this
HEADER = struct.Struct("<BBH")
ERRORS = {
    1: "bad CRC", 2: "oversize frame", 3: "truncated frame", 4: "malformed COBS",
    5: "unsupported version", 6: "unknown request type", 7: "bad body length",
    8: "upload outside the input", 9: "no result for that input",
    10: "not supported on this board",
}  # fmt: skip
E_VERSION, E_INPUT = 5, 9


def crc32(data: bytes) -> int:
    """CRC-32/IEEE (zlib's), as firmware/src/link.c computes it."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    out = bytearray([0])
    code_at, code = 0, 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; ValueError when malformed."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            raise ValueError("malformed COBS")
        out += data[i + 1 : i + code]
        i += code
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(ftype: int, seq: int, body: bytes = b"", version: int = VERSION) -> bytes:
    """The wire bytes of one frame, delimiters included."""
    payload = HEADER.pack(version, ftype, seq & 0xFFFF) + body
    payload += struct.pack("<I", crc32(payload))
    return b"\x00" + cobs_encode(payload) + b"\x00"


@dataclass(frozen=True)
class Frame:
    version: int
    type: int
    seq: int
    body: bytes


def decode_frame(encoded: bytes) -> Frame:
    """One frame from the bytes between two delimiters; ValueError when corrupt."""
    payload = cobs_decode(encoded)
    if len(payload) < HEADER.size + 4:
        raise ValueError(f"truncated frame ({len(payload)} bytes)")
    (want,) = struct.unpack_from("<I", payload, len(payload) - 4)
    if crc32(payload[:-4]) != want:
        raise ValueError("bad CRC")
    return frame_of(payload)


def frame_of(payload: bytes) -> Frame:
    """The fields of a decoded payload whose CRC-32 is right (header, body, CRC)."""
    version, ftype, seq = HEADER.unpack_from(payload)
    return Frame(version, ftype, seq, payload[HEADER.size : -4])


class FrameReader:
    """Splits a byte stream into frames at 0x00; bytes outside frames are counted as noise."""

    def __init__(self, max_encoded: int = 1 << 16) -> None:
        self.buf = bytearray()
        self.max_encoded = max_encoded
        self.noise = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The complete frames (encoded, without delimiters) that ``data`` finishes."""
        out = []
        parts = bytes(data).split(b"\x00")
        self.buf += parts[0]
        for part in parts[1:]:
            if self.buf:
                out.append(bytes(self.buf))
            self.buf = bytearray(part)
        if len(self.buf) > self.max_encoded:
            self.noise += len(self.buf)
            self.buf.clear()
        return out


# --- message bodies ----------------------------------------------------------------------


def upload_body(tag: int, index: int, data: bytes) -> bytes:
    """One chunk of the input whose CRC-32 is ``tag``: chunk ``index`` (offset index x chunk),
    its bytes XOR 0x55 (inputs hold many zeros, and each zero costs a COBS code byte, which
    a flipped bit makes uncorrectable)."""
    return struct.pack("<IH", tag, index) + bytes(b ^ WHITEN for b in data)


def run_body(tag: int, profile: bool = False, copies: int = 1) -> bytes:
    """RUN the input tagged ``tag``; the device sends its reply ``copies`` (1-4) times."""
    return struct.pack("<IB", tag, (1 if profile else 0) | ((max(1, min(4, copies)) - 1) << 6))


def result_body(tag: int, offset: int) -> bytes:
    return struct.pack("<IH", tag, offset)


def info_body(offset: int) -> bytes:
    return struct.pack("<H", offset)


@dataclass(frozen=True)
class Piece:
    """A record reply: bytes [offset, offset + len(data)) of a ``total``-byte record."""

    total: int
    offset: int
    data: bytes

    @classmethod
    def parse(cls, body: bytes) -> Piece:
        if len(body) < 5 or body[0] != 0:
            raise ValueError(f"malformed record reply ({len(body)} bytes)")
        total, offset = struct.unpack_from("<HH", body, 1)
        data = body[5:]
        if offset + len(data) > total:
            raise ValueError("record piece past its end")
        return cls(total, offset, data)


@dataclass(frozen=True)
class Missing:
    """A RUN reply saying which chunks of the input the device does not hold."""

    tag: int
    chunks: tuple[int, ...]

    @classmethod
    def parse(cls, body: bytes) -> Missing:
        if len(body) < 9 or body[0] != 1:
            raise ValueError("malformed missing-chunks reply")
        tag, first, count = struct.unpack_from("<IHH", body, 1)
        bits = body[9:]
        if len(bits) * 8 < count:
            raise ValueError("missing-chunks bitmap too short")
        return cls(tag, tuple(first + k for k in range(count) if bits[k // 8] >> (k % 8) & 1))


@dataclass(frozen=True)
class Info:
    """The INFO record: what the firmware was built with."""

    proto_version: int
    chunk: int
    reply_chunk: int
    rx_window: int
    rx_dropped: int
    input_bytes: int
    input_signed: bool
    input_shape: tuple[int, int, int]
    output_count: int
    output_elem_bytes: int
    arena_bytes: int
    layers: int
    macs: int
    has_instructions: bool
    clock_hz: int
    model_hash: str
    model_name: str
    board: str
    build_id: str
    counter: str
    slots: int = 2  # input slots (the inputs the host may keep in flight); absent: 2

    @property
    def output_bytes(self) -> int:
        return self.output_count * self.output_elem_bytes

    @classmethod
    def parse(cls, rec: bytes) -> Info:
        fmt = struct.Struct("<BHHIIIBHHHIBIHQBI")
        try:
            (pv, chunk, rchunk, window, dropped, inb, signed, h, w, c, oc, oe, arena, layers,
             macs, hi, clk) = fmt.unpack_from(rec)
            pos, strings = fmt.size, []
            for _ in range(5):
                n = rec[pos]
                strings.append(rec[pos + 1 : pos + 1 + n].decode("ascii"))
                pos += 1 + n
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed INFO record ({len(rec)} bytes)") from exc
        return cls(pv, chunk, rchunk, window, dropped, inb, bool(signed), (h, w, c), oc, oe,
                   arena, layers, macs, bool(hi), clk, *strings,
                   slots=max(1, rec[pos]) if pos < len(rec) else 2)


@dataclass(frozen=True)
class RunReply:
    rc: int
    input_crc: int
    ticks: int
    instructions: int
    output: bytes
    layer_costs: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, rec: bytes, output_bytes: int) -> RunReply:
        fmt = struct.Struct("<IiQI")
        if len(rec) < fmt.size + output_bytes:
            raise ValueError(f"RUN record too short ({len(rec)} bytes)")
        tag, rc, ticks, instr = fmt.unpack_from(rec)
        out = rec[fmt.size : fmt.size + output_bytes]
        rest = rec[fmt.size + output_bytes :]
        layers: tuple[tuple[int, int], ...] = ()
        if rest:
            (n,) = struct.unpack_from("<H", rest)
            layers = tuple(struct.iter_unpack("<II", rest[2 : 2 + 8 * n]))
        return cls(rc, tag, ticks, instr, bytes(out), layers)


def error_code(body: bytes) -> int:
    return body[0] if body else 0


def error_text(body: bytes) -> str:
    if len(body) < 5:
        return "malformed error frame"
    code, detail = struct.unpack_from("<BI", body)
    return f"{ERRORS.get(code, f'error {code}')} ({detail})"


# --- link settings and statistics (used by channel.py / link.py) --------------------------


@dataclass
class LinkPolicy:
    """How long to wait and when to stop (``stq validate --link-timeout --give-up-after``)."""

    timeout: float = 5.0  # ceiling of the adaptive per-request timeout (s)
    give_up_after: float = 60.0  # the link is dead after this long without one valid frame (s)
    min_timeout: float = 0.1


@dataclass
class LinkStats:
    """What the link had to recover from (reported by `stq validate`, appended to link.jsonl)."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    early_retries: int = 0  # re-sent after a damaged frame, before the timeout
    corrupt_frames: int = 0  # arrived damaged (repaired ones included)
    repaired_frames: int = 0  # of those, repaired (repair.py)
    stale_replies: int = 0
    device_errors: Counter[str] = field(default_factory=Counter)
    chunks_sent: int = 0
    chunks_resent: int = 0
    held_runs: int = 0  # RUNs answered by the chunk that completed their input (no RUN again)
    resyncs: int = 0
    reconnects: int = 0
    window_waits: int = 0
    copies: int = 1
    bytes_out: int = 0
    bytes_in: int = 0

    def as_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["device_errors"] = dict(self.device_errors)
        return d
