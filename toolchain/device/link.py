"""Host client of the framed device protocol, version 2 (docs/protocol.md): finishes over a
noisy line and never records a wrong result.

Every reply must carry a sequence number the host is waiting for and a valid CRC-32, and a RUN
record must name the input (its CRC-32) it ran on; anything else is counted and ignored. Inputs
go up in small chunks, each with its own CRC; RUN answers the result or which chunks are still
missing, and only those are sent again. Bytes not yet known to be consumed by the device stay
within the receive ring it reports (flow control). Retries are bounded by progress, not by a
count: the link keeps trying (adaptive timeout, exponential back-off, replies sent 1-3 times
when the line is bad, re-synchronisation and reconnection when nothing gets through) as long as
valid frames keep arriving, and gives up only after ``give_up_after`` seconds without any.

    with DeviceLink.open("socket://127.0.0.1:4321") as link:
        info = link.info()
        reply = link.infer(x_bytes)          # RunReply: output bytes, ticks, instructions
"""

from __future__ import annotations

import time
from collections.abc import Callable

from toolchain.device import protocol as P
from toolchain.device.channel import FrameChannel
from toolchain.device.protocol import LinkPolicy, LinkStats
from toolchain.errors import StqError

__all__ = ["DeviceLink", "LinkPolicy", "LinkStats"]


class DeviceLink(FrameChannel):
    """A device speaking the framed protocol (INFO, chunked UPLOAD, RUN, RESULT, QUIT)."""

    def _fetch(self, ftype: int, body_at: Callable[[int], bytes],
               first: P.Piece | None = None) -> bytes:
        """A whole record, piece by piece; missing pieces asked for again, in parallel."""
        have: dict[int, bytes] = {}
        total = None
        if first is not None:
            have[first.offset], total = first.data, first.total
        step = self.info_.reply_chunk if self.info_ is not None else 40
        asked: dict[int, int] = {}  # every request sent: seq -> offset (late answers count)
        while True:
            todo = [0] if total is None else [
                o for o in range(0, total, step) if o not in have]
            if not todo:
                break
            t0 = time.monotonic()
            sent = {self._send(ftype, body_at(o)): o for o in todo}
            asked.update(sent)
            self.stats.requests += len(sent)
            early = self._wait(set(sent), self._rto)
            got = 0
            for seq in sorted(asked.keys() & self._inbox.keys()):
                frame = self._inbox.pop(seq)
                if frame.type == P.T_ERROR:
                    raise StqError(f"device refused request {ftype:#04x}: "
                                   f"{P.error_text(frame.body)}")
                try:
                    piece = P.Piece.parse(frame.body)
                except ValueError:
                    self.stats.corrupt_frames += 1
                    continue
                have[piece.offset], total, got = piece.data, piece.total, got + 1
            self._round_done(got > 0, t0, early, sample=len(asked) == len(sent))
        return b"".join(have[o] for o in sorted(have))[:total]

    # --- commands ---------------------------------------------------------------------------
    def wait_ready(self, limit: float) -> bool:
        """Wait for a booting device's banner (its line ends in '\\n') or a quiet gap after
        some bytes, at most ``limit`` s; anything read is dropped. True when it arrived."""
        deadline, seen, last = time.monotonic() + limit, b"", 0.0
        while time.monotonic() < deadline:
            data = self._read(0.05)
            now = time.monotonic()
            if data:
                seen, last = seen + data, now
                self.stats.bytes_in += len(data)
                if b"\n" in seen:
                    return True
            elif seen and now - last > 0.3:
                return True
        return False

    def info(self) -> P.Info:
        self._last_valid = time.monotonic()  # give_up_after counts while an operation waits
        self._inbox.clear()
        rec = self._fetch(P.T_INFO, P.info_body)
        try:
            self.info_ = P.Info.parse(rec)
        except ValueError as exc:
            raise StqError(f"device sent a bad INFO record: {exc}") from exc
        return self.info_

    def _info(self) -> P.Info:
        return self.info_ if self.info_ is not None else self.info()

    def _reply_copies(self) -> int:
        """Copies of the RUN reply: one more than of requests once the line is bad (bytes
        from the device are cheap; QEMU's receive side costs ~0.5 ms per byte)."""
        return 1 if self.stats.copies == 1 else min(4, self.stats.copies + 1)

    def _upload(self, tag: int, data: bytes, indices: list[int] | None = None) -> None:
        size = self._info().chunk
        n = -(-len(data) // size)
        for i in range(n) if indices is None else indices:
            if 0 <= i < n:
                self._send(P.T_UPLOAD, P.upload_body(tag, i, data[i * size:(i + 1) * size]),
                           reply=False, copies=min(self.upload_copies, self.stats.copies))
                self.stats.chunks_sent += 1

    def infer(self, data: bytes, next_data: bytes | None = None, profile: bool = False
              ) -> P.RunReply:
        """Run one input; its output bytes and cost. With ``next_data``, that input's chunks are
        streamed right after the RUN request, so its upload overlaps this inference."""
        info = self._info()
        if len(data) != info.input_bytes:
            raise StqError(f"input is {len(data)} bytes, the device model expects "
                           f"{info.input_bytes}")
        tag = P.crc32(data)
        self.stats.requests += 1
        self._last_valid = time.monotonic()
        self._inbox.clear()
        if self._preloaded != tag:
            self._upload(tag, data)
        pending_next = next_data
        runs: set[int] = set()  # every RUN sent for this input: a late answer is as good
        while True:
            t0 = time.monotonic()
            runs.add(self._send(P.T_RUN, P.run_body(tag, profile, self._reply_copies())))
            if pending_next is not None:
                self._upload(P.crc32(pending_next), pending_next)
                self._preloaded, pending_next = P.crc32(pending_next), None
            early = self._wait(runs, self._rto, any_=True)
            got = sorted(runs & self._inbox.keys())
            frame = self._inbox.pop(got[-1]) if got else None
            self._round_done(frame is not None, t0, early, sample=len(runs) == 1)
            if frame is None:
                continue
            if frame.type == P.T_ERROR:
                self.stats.device_errors[P.error_text(frame.body).split(" (")[0]] += 1
                raise StqError(f"device refused RUN: {P.error_text(frame.body)}")
            try:
                if frame.body[:1] == b"\x01":
                    missing = P.Missing.parse(frame.body)
                    if missing.tag != tag:
                        raise ValueError("missing-chunks reply for another input")
                    self.stats.chunks_resent += len(missing.chunks)
                    self._upload(tag, data, list(missing.chunks))
                    continue
                first = P.Piece.parse(frame.body)
                rec = self._fetch(P.T_RESULT, lambda o: P.result_body(tag, o), first)
                reply = P.RunReply.parse(rec, info.output_bytes)
            except ValueError:
                self.stats.corrupt_frames += 1
                continue
            if reply.input_crc != tag:  # cannot happen with intact frames: be certain
                self.stats.stale_replies += 1
                continue
            if reply.rc != 0:
                raise StqError(f"stq_model_invoke returned {reply.rc} on the device")
            return reply

    def quit(self) -> None:
        """Ask an emulated board to exit (QEMU semihosting exit 0; the virtual board exits)."""
        for _ in range(3):
            self._write(P.encode_frame(P.T_QUIT, self._next_seq()))
        self._flush()
        self.port.flush()

