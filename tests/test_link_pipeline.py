"""The framed protocol's input slots and deep pipeline, and its whitened uploads, on the
virtual board (the firmware's own frame.c compiled for the host, on a pty)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from toolchain.device import protocol as P
from toolchain.device.link import DeviceLink
from toolchain.device.virtual_board import VirtualBoard
from toolchain.ir import artifact
from toolchain.reference import model as reference


@pytest.fixture(scope="module")
def digits_io(digits_outdir: Path, digits_data) -> tuple[list[bytes], list[bytes]]:
    g = artifact.load(digits_outdir / "model.stqa")
    xq = reference.quantize_input(g, digits_data.x_test)
    dt = np.dtype("<i4") if g.tensors[g.output].itemsize == 4 else np.dtype(np.int8)
    ys = reference.predict(g, xq).astype(dt)
    return [x.tobytes() for x in xq], [y.tobytes() for y in ys]


def test_upload_data_is_whitened_and_slots_default_to_two() -> None:
    body = P.upload_body(0x01020304, 5, bytes([0, 0x55, 0xFF]))
    assert body == bytes([4, 3, 2, 1, 5, 0, 0x55, 0x00, 0xAA])
    # an INFO record without the slots byte (a version-2 style record) reads as 2 slots
    rec = bytes(48) + b"".join(bytes([1]) + b"x" for _ in range(5))
    assert P.Info.parse(rec).slots == 2
    assert P.Info.parse(rec + bytes([6])).slots == 6


def _frames(link: DeviceLink, want: int, limit: float = 3.0) -> list[P.Frame]:
    reader, got = P.FrameReader(), []
    deadline = time.monotonic() + limit
    while len(got) < want and time.monotonic() < deadline:
        for raw in reader.feed(link.port.read(max(1, link.port.in_waiting))):
            got.append(P.decode_frame(raw))
    return got


def test_device_holds_as_many_inputs_as_it_reports(digits_outdir: Path, digits_io) -> None:
    """Upload as many inputs as INFO's slots, then RUN them all: every one is still held (with
    two slots the first ones would come back as missing chunks), and one more input than the
    slots evicts the oldest."""
    xs, ys = digits_io
    with VirtualBoard(digits_outdir) as vb, DeviceLink.open(vb.port_url) as link:
        info = link.info()
        assert info.input_bytes <= 256 and info.slots == 8
        n = -(-info.input_bytes // info.chunk)
        wire = b"".join(
            P.encode_frame(P.T_UPLOAD, 100 + k, P.upload_body(
                P.crc32(x), i, x[i * info.chunk:(i + 1) * info.chunk]))
            for k, x in enumerate(xs[: info.slots + 1]) for i in range(n))
        link.port.write(wire)
        link.port.write(b"".join(P.encode_frame(P.T_RUN, 200 + k, P.run_body(P.crc32(x)))
                                 for k, x in enumerate(xs[: info.slots + 1])))
        frames = _frames(link, info.slots + 1)
        assert [f.seq for f in frames] == [200 + k for k in range(info.slots + 1)]
        missing = [f for f in frames if f.body[:1] == b"\x01"]
        assert [P.Missing.parse(f.body).tag for f in missing] == [P.crc32(xs[0])]
        for k, f in enumerate(frames[1:], start=1):
            rec = P.RunReply.parse(P.Piece.parse(f.body).data, info.output_bytes)
            assert rec.input_crc == P.crc32(xs[k]) and rec.output == ys[k]


def test_inputs_ahead_fill_the_slots(digits_outdir: Path, digits_io) -> None:
    """infer(x, next_inputs) keeps slots - 1 inputs in flight behind x, and every answer is
    right; with a device reporting 2 slots, one. Called without inputs ahead, it drops the
    ones in flight."""
    xs, ys = digits_io
    with VirtualBoard(digits_outdir) as vb, DeviceLink.open(vb.port_url) as link:
        info = link.info()
        for slots in (info.slots, 2):
            link.info_ = dataclasses.replace(info, slots=slots)
            for i in range(40):
                assert link.infer(xs[i], xs[i + 1 : i + 30]).output == ys[i]
                assert len(link._jobs) == slots - 1
            assert link.infer(xs[40]).output == ys[40]
            assert not link._jobs
        # the answers to inputs dropped from the list (infer(xs[40]) alone) come back stale
        assert link.stats.timeouts == 0 and link.stats.stale_replies <= info.slots - 2


def test_run_with_chunks_missing_is_answered_by_the_chunk_that_completes_it(
        digits_outdir: Path, digits_io) -> None:
    """Version 4: a RUN that finds chunks missing answers which ones and stays pending; the
    UPLOAD that completes the input runs it and answers the run record under that RUN's
    sequence number, as many copies as the RUN asked for, without a second RUN. A re-sent copy
    of a chunk the device already holds does not run it again; a RUN of an input the device
    holds no chunk of keeps nothing pending (the host sends the chunks and a RUN again)."""
    xs, ys = digits_io
    with VirtualBoard(digits_outdir) as vb, DeviceLink.open(vb.port_url) as link:
        info = link.info()
        assert info.proto_version == P.VERSION == 4
        n = -(-info.input_bytes // info.chunk)
        assert n >= 2
        x, tag = xs[3], P.crc32(xs[3])

        def chunk(i: int, seq: int) -> bytes:
            return P.encode_frame(P.T_UPLOAD, seq, P.upload_body(
                tag, i, x[i * info.chunk:(i + 1) * info.chunk]))

        link.port.write(b"".join(chunk(i, 10 + i) for i in range(1, n)))  # chunk 0 lost
        link.port.write(P.encode_frame(P.T_RUN, 50, P.run_body(tag, copies=2)))
        missing, again = _frames(link, 2)  # two copies, as asked
        assert missing == again and missing.seq == 50
        assert P.Missing.parse(missing.body).chunks == (0,)
        link.port.write(chunk(0, 60))  # the missing chunk, and no RUN
        replies = _frames(link, 2)
        assert [f.seq for f in replies] == [50, 50] and replies[0] == replies[1]
        rec = P.RunReply.parse(P.Piece.parse(replies[0].body).data, info.output_bytes)
        assert rec.input_crc == tag and rec.output == ys[3]
        link.port.write(chunk(0, 61) + chunk(1, 62))  # copies of held chunks: nothing runs
        assert _frames(link, 1, limit=0.5) == []
        other = xs[4]
        link.port.write(P.encode_frame(P.T_RUN, 70, P.run_body(P.crc32(other))))
        (none,) = _frames(link, 1)
        assert P.Missing.parse(none.body).chunks == tuple(range(n))
        link.port.write(b"".join(P.encode_frame(P.T_UPLOAD, 80 + i, P.upload_body(
            P.crc32(other), i, other[i * info.chunk:(i + 1) * info.chunk])) for i in range(n)))
        assert _frames(link, 1, limit=0.5) == []  # no slot was held: no RUN pending
        # the host: a held RUN is answered without a RUN again (the virtual board's line is
        # clean, so drop one chunk on the way by hand)
        link._inbox.clear()
        real = link._upload

        def lose_chunk_0_once(tag_: int, data: bytes, indices: list[int] | None = None,
                              copies: int = 1) -> None:
            if indices is None and data == xs[5]:
                indices = list(range(1, n))
            real(tag_, data, indices, copies)

        sent: list[int] = []
        send = link._send

        def counted(ftype: int, body: bytes, reply: bool = True, copies: int = 1) -> int:
            sent.append(ftype)
            return send(ftype, body, reply, copies)

        link._upload = lose_chunk_0_once  # type: ignore[method-assign]
        link._send = counted  # type: ignore[method-assign]
        assert link.infer(xs[5]).output == ys[5]
        assert link.stats.held_runs == 1 and link.stats.chunks_resent == 1
        assert link.stats.retries == 0 and sent.count(P.T_RUN) == 1
        assert sent == [P.T_UPLOAD] * (n - 1) + [P.T_RUN, P.T_UPLOAD]
