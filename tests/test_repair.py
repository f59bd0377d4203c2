"""Repair of damaged frames (docs/protocol.md, "Repair"): every single flipped bit, dropped
byte and inserted byte of real frames is repaired to the exact payload, by the host's
toolchain/device/repair.py and by the firmware's stq_frame_repair (link.c compiled for the host
and called through ctypes) alike; frames with more damage are not repaired into wrong ones in a
seeded sample; the host takes a record piece repaired by solving for a dropped byte only once a
second copy confirms it. The end-to-end test is the 1 % fault-proxy runs (tests/test_link.py on
the virtual board, tests/firmware/test_fw_link.py on QEMU), whose statistics count repairs."""

from __future__ import annotations

import ctypes
import random
import struct
import subprocess
from pathlib import Path

import pytest

from toolchain.device import protocol as P
from toolchain.device.channel import FrameChannel
from toolchain.device.repair import candidates, check, repair
from toolchain.firmware.cflags import STRICT
from toolchain.resources import firmware_dir

pytestmark = pytest.mark.unit


def _frames() -> list[bytes]:
    """Encoded frames (no delimiters) of the kinds that cross the link, with real contents."""
    rng = random.Random(5)
    chunk = bytes(rng.randrange(256) for _ in range(32))
    record = struct.pack("<IiQI", 0xDEADBEEF, 0, 123456, 98765) + bytes(
        rng.randrange(256) for _ in range(10))
    piece = bytes([0]) + struct.pack("<HH", len(record), 0) + record[:29]
    frames = [
        P.encode_frame(P.T_UPLOAD, 7, P.upload_body(0x1234ABCD, 1, chunk)),
        P.encode_frame(P.T_UPLOAD, 8, P.upload_body(0, 0, bytes(32))),  # whitened zeros
        P.encode_frame(P.T_RUN, 300, P.run_body(0x1234ABCD, copies=2)),
        P.encode_frame(P.T_RUN | P.T_REPLY, 300, piece),
        P.encode_frame(P.T_INFO, 0, P.info_body(0)),
        P.encode_frame(P.T_ERROR, P.NO_SEQ, bytes([1]) + struct.pack("<I", 46)),
    ]
    return [f[1:-1] for f in frames]


def _single_errors(enc: bytes, rng: random.Random):
    """(kind, damaged) for every bit of every byte, every byte dropped, a byte inserted at
    every place (a zero is a delimiter: it would split the frame, not damage it)."""
    for j in range(len(enc)):
        for b in range(8):
            if enc[j] ^ (1 << b):
                yield "bit", enc[:j] + bytes([enc[j] ^ (1 << b)]) + enc[j + 1:]
        yield "drop", enc[:j] + enc[j + 1:]
    for j in range(len(enc) + 1):
        yield "insert", enc[:j] + bytes([rng.randrange(1, 256)]) + enc[j:]


def test_every_single_error_is_repaired_exactly() -> None:
    rng = random.Random(1)
    seen = set()
    for enc in _frames():
        truth = P.cobs_decode(enc)
        assert check(truth) == 0
        for kind, bad in _single_errors(enc, rng):
            r = repair(bad)
            assert r is not None and r.payload == truth, (kind, enc.hex(), bad.hex())
            seen.add(r.kind)
            assert r.strong == (r.kind != "drop")
    # code bytes are hit too (a flipped one breaks COBS's structure), and a dropped byte
    # is repaired both as a data byte and as a code byte
    assert seen == {"bit", "code", "insert", "drop"}


def test_double_errors_are_not_repaired_into_wrong_frames() -> None:
    rng = random.Random(2)
    frames = _frames()
    repaired = refused = 0
    for _ in range(1500):
        enc = rng.choice(frames)
        bad = bytearray(enc)
        for _ in range(2):
            j = rng.randrange(len(bad))
            k = rng.choice(("bit", "drop", "insert"))
            if k == "bit":
                bad[j] ^= 1 << rng.randrange(8)
            elif k == "drop":
                del bad[j]
            else:
                bad.insert(j, rng.randrange(1, 256))
        if 0 in bad or bytes(bad) == enc:
            continue
        r = repair(bytes(bad))
        if r is None:
            refused += 1
        else:  # only where the two errors undo into one (e.g. a flipped bit flipped back)
            assert r.payload == P.cobs_decode(enc)
            repaired += 1
    assert refused > 1000


def test_ambiguous_damage_is_refused() -> None:
    # a byte dropped from a run of equal bytes is one payload, not several
    enc = P.encode_frame(P.T_UPLOAD, 1, P.upload_body(5, 0, b"\x11" * 32))[1:-1]
    bad = enc[:20] + enc[21:]
    assert len(candidates(bad)) == 1 and repair(bad) is not None
    # noise that is no frame at all, and a long run of bytes between two zeros
    assert repair(bytes(range(1, 30))) is None
    assert repair(bytes(range(1, 256)) * 12) is None
    # a payload of another protocol version is not a repair
    other = P.encode_frame(P.T_RUN | P.T_REPLY, 9, bytes(10), version=3)[1:-1]
    assert repair(other[:4] + other[5:]) is None


@pytest.fixture(scope="module")
def firmware_repair(digits_outdir: Path, tmp_path_factory: pytest.TempPathFactory):
    """stq_frame_repair of firmware/src/link.c, built for the host with the firmware's flags."""
    d = tmp_path_factory.mktemp("link-c")
    (d / "stq_board_config.h").write_text("/* host build of link.c */\n")
    (d / "uart.c").write_text("#include <stdint.h>\nvoid stq_uart_putc(uint8_t c);\n"
                              "void stq_uart_write(const uint8_t *d, uint32_t n);\n"
                              "void stq_uart_putc(uint8_t c) { (void)c; }\n"
                              "void stq_uart_write(const uint8_t *d, uint32_t n) "
                              "{ (void)d; (void)n; }\n")
    so = d / "liblink.so"
    src = firmware_dir() / "src"
    subprocess.run(["gcc", *STRICT, "-O2", "-shared", "-fPIC", f"-I{d}",
                    f"-I{digits_outdir / 'c'}", f"-I{src}", f"-I{firmware_dir() / 'include'}",
                    str(src / "link.c"), str(d / "uart.c"), "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    lib.stq_frame_repair.restype = ctypes.c_int32
    lib.stq_frame_repair.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p,
                                     ctypes.c_uint32]
    lib.stq_cobs_decode.restype = ctypes.c_int32
    lib.stq_cobs_decode.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
    lib.stq_crc32_fix_bit.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
    cap = 49  # STQ_PROTO_ENCODED_MAX + 1

    def device(enc: bytes) -> bytes | None:
        """What the firmware's frame.c makes of a frame: decoded and single-bit corrected,
        else repaired; the payload without its CRC field, or None."""
        buf = ctypes.create_string_buffer(enc, cap)
        n = lib.stq_cobs_decode(buf, len(enc))
        if 8 <= n <= 46 and lib.stq_crc32_fix_bit(buf, n):
            return buf.raw[: n - 4]
        out = ctypes.create_string_buffer(cap)
        n = lib.stq_frame_repair(enc, len(enc), out, cap)
        return out.raw[: n - 4] if n > 0 else None

    return device


def _requests() -> list[bytes]:
    """The frames a device receives (it repairs only requests of its protocol version)."""
    return [f for f in _frames() if P.cobs_decode(f)[1] <= P.T_RESULT]


def test_firmware_repairs_every_single_error_like_the_host(firmware_repair) -> None:
    rng = random.Random(3)
    assert len(_requests()) == 4
    for enc in _requests():
        truth = P.cobs_decode(enc)[:-4]
        assert firmware_repair(enc) == truth
        for kind, bad in _single_errors(enc, rng):
            assert firmware_repair(bad) == truth, (kind, enc.hex(), bad.hex())
    # a QUIT whose last CRC byte is 0xFF, its last byte dropped: rotated right by one byte it
    # has a right CRC too, but not this protocol's version, so it is not taken
    quit_ = bytes.fromhex("09040449014d2493ff")
    assert P.cobs_decode(quit_)[:2] == bytes([P.VERSION, P.T_QUIT])
    assert firmware_repair(quit_[:-1]) in (None, P.cobs_decode(quit_)[:-4])
    # and no wrong payload from double damage in a seeded sample
    frames, wrong, refused = _requests(), 0, 0
    for _ in range(1500):
        enc = rng.choice(frames)
        bad = bytearray(enc)
        for _ in range(2):
            j = rng.randrange(len(bad))
            bad[j] ^= 1 << rng.randrange(8)
            del bad[rng.randrange(len(bad))]
        if 0 in bad:
            continue
        got = firmware_repair(bytes(bad))
        refused += got is None
        wrong += got is not None and got != P.cobs_decode(enc)[:-4]
    assert wrong == 0 and refused > 1000


def test_host_confirms_a_weakly_repaired_record_piece() -> None:
    import serial

    ch = FrameChannel(serial.serial_for_url("loop://", timeout=0))
    rec = [f for f in _frames() if f[0] and P.cobs_decode(f)[1] == P.T_RUN | P.T_REPLY][0]
    truth = P.cobs_decode(rec)
    # a dropped data byte: solved for 8 of the 32 check bits, so not taken alone ...
    j = next(j for j in range(5, len(rec)) if repair(rec[:j] + rec[j + 1:]).kind == "drop")
    assert ch._repair(rec[:j] + rec[j + 1:]) is None
    assert ch._repair(rec[:j] + rec[j + 1:]) is None  # the same damage again confirms nothing
    # ... but taken when a second copy, damaged elsewhere, repairs to the same bytes
    k = next(k for k in range(j + 3, len(rec)) if repair(rec[:k] + rec[k + 1:]).kind == "drop")
    frame = ch._repair(rec[:k] + rec[k + 1:])
    assert frame is not None and frame.body == truth[4:-4] and frame.seq == 300
    # an inserted byte (2^-32 per place tried) is taken at once
    frame = ch._repair(rec[:9] + b"\x42" + rec[9:])
    assert frame is not None and frame.body == truth[4:-4]
    # and so is a dropped byte in an error frame: nothing is recorded from it
    err = _frames()[-1]
    e = P.cobs_decode(err)
    assert ch._repair(err[:3] + err[4:]).body == e[4:-4]
    ch.close()
