"""Host client of the framed device protocol (docs/protocol.md), with retries and resync.

Never records a wrong result: every reply must carry the current request's sequence number and
a valid CRC-32, a RUN reply must echo the CRC-32 of the input it ran on, and anything else
(stale, duplicated, corrupt, timed out) is counted and the request re-sent with a new sequence
number. Inputs go up in chunks (offset + data); the fast path streams them unacknowledged (and
the next input while the device computes), the recovery path acknowledges every chunk.

    with DeviceLink.open("socket://127.0.0.1:4321") as link:
        info = link.info()
        reply = link.infer(x_bytes)          # RunReply: output bytes, ticks, instructions
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import serial

from toolchain.device import protocol as P
from toolchain.errors import StqError


@dataclass
class LinkStats:
    """What the link had to recover from (reported by `stq validate`)."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    early_retries: int = 0  # re-sent after a damaged frame, before the timeout
    corrupt_frames: int = 0
    stale_replies: int = 0
    device_errors: Counter[str] = field(default_factory=Counter)
    reuploads: int = 0
    bytes_out: int = 0
    bytes_in: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests, "retries": self.retries, "timeouts": self.timeouts,
            "early_retries": self.early_retries,
            "corrupt_frames": self.corrupt_frames, "stale_replies": self.stale_replies,
            "device_errors": dict(self.device_errors), "reuploads": self.reuploads,
            "bytes_out": self.bytes_out, "bytes_in": self.bytes_in,
        }  # fmt: skip


class DeviceLink:
    """A device speaking the framed protocol over any pyserial port."""

    def __init__(
        self,
        port: serial.SerialBase,
        timeout: float = 5.0,
        attempts: int = 12,
        chunk: int = 4096,
        url: str = "",
    ) -> None:
        self.port = port
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.chunk = chunk
        self.stats = LinkStats()
        self.reader = P.FrameReader()
        self._seq = 0
        self._pending: list[bytes] = []
        self._preloaded: int | None = None  # CRC-32 of the input streamed ahead, if any
        self.info_: P.Info | None = None
        self._rtt = timeout / 5  # smoothed round-trip time of answered requests

    @classmethod
    def open(cls, url: str, timeout: float = 5.0, connect_s: float = 10.0, **kw: int) -> DeviceLink:
        deadline = time.monotonic() + connect_s
        while True:
            try:
                port = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
                sock = getattr(port, "_socket", None)
                if sock is not None:  # socket:// URLs: no Nagle delay on small frames
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                break
            except (serial.SerialException, OSError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise StqError(f"cannot open device port {url}: {exc}") from exc
                time.sleep(0.2)
        return cls(port, timeout=timeout, url=url, **kw)

    # --- frames ------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % P.NO_SEQ  # 0xFFFF is reserved for "unknown"
        return self._seq

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise StqError(f"write to {self.url or 'the device'} failed: {exc}") from exc
        self.stats.bytes_out += len(data)

    def _read_frame(self, deadline: float) -> P.Frame | None:
        """The next well-formed frame before ``deadline`` (corrupt ones are counted and returned
        as a NO_SEQ error), or None on timeout."""
        while True:
            if self._pending:
                raw = self._pending.pop(0)
                try:
                    return P.decode_frame(raw)
                except ValueError:
                    self.stats.corrupt_frames += 1
                    return P.Frame(P.VERSION, P.T_ERROR, P.NO_SEQ, b"")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait = max(0.001, min(0.05, left))
            if abs(wait - (self.port.timeout or 0)) > 0.001:
                self.port.timeout = wait  # never block past the deadline
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise StqError(f"read from {self.url or 'the device'} failed: {exc}") from exc
            if data:
                self.stats.bytes_in += len(data)
                self._pending.extend(self.reader.feed(data))

    def _grace(self) -> float:
        """How long to keep waiting for our reply after a damaged frame: a few round trips."""
        return min(self.timeout / 5, max(0.001, 2 * self._rtt))

    def request(self, ftype: int, body: bytes = b"", after: bytes = b"") -> P.Frame:
        """Send one request until a matching reply arrives: the reply (type | 0x80) or the
        device's error frame for it (type ERROR, same sequence number). ``after`` is written
        right after the first send (the next input's chunks, streamed while the device works)."""
        self.stats.requests += 1
        tried: list[str] = []
        for attempt in range(self.attempts):
            if attempt:
                self.stats.retries += 1
            seq = self._next_seq()
            sent = time.monotonic()
            self._write(P.encode_frame(ftype, seq, body))
            if after and attempt == 0:
                self._write(after)
            deadline = time.monotonic() + self.timeout
            while True:
                frame = self._read_frame(deadline)
                if frame is None:
                    if time.monotonic() - sent >= self.timeout:
                        self.stats.timeouts += 1
                        tried.append(f"no reply in {self.timeout:g} s")
                    break
                if frame.seq == seq and frame.type in (ftype | P.T_REPLY, P.T_ERROR):
                    self._rtt = 0.8 * self._rtt + 0.2 * (time.monotonic() - sent)
                    if frame.type == P.T_ERROR:
                        self.stats.device_errors[P.error_text(frame.body).split(" (")[0]] += 1
                    return frame
                if frame.seq == P.NO_SEQ and frame.type == P.T_ERROR:
                    # our request, our reply, or an earlier one was damaged on the way: wait a
                    # little longer for our reply, then send again (not at once: re-sending on
                    # every old error would pile up requests in flight)
                    tried.append("corrupt frame" if not frame.body else P.error_text(frame.body))
                    self.stats.early_retries += 1
                    deadline = min(deadline, time.monotonic() + self._grace())
                    continue
                self.stats.stale_replies += 1  # an old or duplicated reply: never ours
        raise StqError(
            f"no valid reply from {self.url or 'the device'} to request type {ftype:#04x} "
            f"after {self.attempts} attempts ({'; '.join(tried[-3:])})"
        )

    # --- commands ----------------------------------------------------------------------------
    def info(self) -> P.Info:
        self.port.reset_input_buffer()
        self._pending.clear()
        self.reader = P.FrameReader()
        frame = self.request(P.T_INFO)
        if frame.type == P.T_ERROR:
            raise StqError(f"device refused INFO: {P.error_text(frame.body)}")
        try:
            self.info_ = P.Info.parse(frame.body)
        except ValueError as exc:
            raise StqError(f"device sent a bad INFO reply: {exc}") from exc
        return self.info_

    def _info(self) -> P.Info:
        return self.info_ if self.info_ is not None else self.info()

    def _chunks(self, data: bytes) -> list[tuple[int, bytes]]:
        size = max(1, min(self.chunk, self._info().chunk_max))
        return [(off, data[off : off + size]) for off in range(0, len(data), size)]

    def upload_frames(self, data: bytes) -> bytes:
        """Unacknowledged UPLOAD frames for ``data`` (sequence numbers are not checked)."""
        return b"".join(
            P.encode_frame(P.T_UPLOAD, self._next_seq(), P.upload_body(off, part, ack=False))
            for off, part in self._chunks(data)
        )

    def upload_acked(self, data: bytes) -> None:
        """Every chunk acknowledged; a lost chunk is re-sent."""
        for off, part in self._chunks(data):
            frame = self.request(P.T_UPLOAD, P.upload_body(off, part, ack=True))
            if frame.type == P.T_ERROR:
                raise StqError(f"device refused an upload at {off}: {P.error_text(frame.body)}")

    def infer(self, data: bytes, next_data: bytes | None = None) -> P.RunReply:
        """Run one input; its output bytes and cost. With ``next_data``, that input's chunks are
        streamed right after the RUN request, so its upload overlaps this inference."""
        info = self._info()
        if len(data) != info.input_bytes:
            raise StqError(f"input is {len(data)} bytes, the device model expects "
                           f"{info.input_bytes}")
        want = P.crc32(data)
        if self._preloaded != want:
            self._write(self.upload_frames(data))
        after = self.upload_frames(next_data) if next_data is not None else b""
        self._preloaded = None
        body = P.run_body(want)
        for _ in range(self.attempts):
            retries = self.stats.retries
            frame = self.request(P.T_RUN, body, after)
            after = b""
            if frame.type == P.T_ERROR:
                if not frame.body or frame.body[0] != P.E_INPUT:
                    raise StqError(f"device refused RUN: {P.error_text(frame.body)}")
                self.stats.reuploads += 1
                self.upload_acked(data)  # a chunk was lost (or the board was reset)
                continue
            try:
                reply = P.RunReply.parse(frame.body, info.output_bytes)
            except ValueError:
                self.stats.corrupt_frames += 1
                continue
            if reply.input_crc != want:  # cannot happen with an intact frame: be certain
                self.stats.stale_replies += 1
                continue
            if next_data is not None and self.stats.retries == retries:
                self._preloaded = P.crc32(next_data)
            if reply.rc != 0:
                raise StqError(f"stq_model_invoke returned {reply.rc} on the device")
            return reply
        raise StqError(f"RUN did not succeed after {self.attempts} uploads")

    def quit(self) -> None:
        """Ask an emulated board to exit (QEMU semihosting exit 0; the virtual board exits)."""
        self._write(P.encode_frame(P.T_QUIT, self._next_seq()))
        self.port.flush()

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> DeviceLink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
