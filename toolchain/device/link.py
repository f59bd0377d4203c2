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

import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import serial

from toolchain.device import protocol as P
from toolchain.errors import StqError


@dataclass
class LinkPolicy:
    """How long to wait and when to stop (``stq validate --link-timeout --give-up-after``)."""

    timeout: float = 5.0  # ceiling of the adaptive per-request timeout (s)
    give_up_after: float = 60.0  # the link is dead after this long without one valid frame (s)
    min_timeout: float = 0.03


@dataclass
class LinkStats:
    """What the link had to recover from (reported by `stq validate`, appended to link.jsonl)."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    early_retries: int = 0  # re-sent after a damaged frame, before the timeout
    corrupt_frames: int = 0
    stale_replies: int = 0
    device_errors: Counter[str] = field(default_factory=Counter)
    chunks_sent: int = 0
    chunks_resent: int = 0
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


class DeviceLink:
    """A device speaking the framed protocol over any pyserial port."""

    def __init__(self, port: serial.SerialBase, policy: LinkPolicy | None = None,
                 url: str = "") -> None:
        self.port, self.url = port, url
        self.policy = policy or LinkPolicy()
        self.stats = LinkStats()
        self.reader = P.FrameReader()
        self._seq = 0
        self._expect: dict[int, float] = {}  # seq -> position in the output stream after it
        self._inbox: dict[int, P.Frame] = {}
        self._out = bytearray()
        self._written = 0.0  # bytes written so far
        self._consumed = 0.0  # bytes the device has certainly read
        self._preloaded: int | None = None
        self._fail = 0.0  # smoothed rate of failed RUN rounds (drives the copies)
        self._rto = min(self.policy.timeout, 1.0)
        self._srtt: float | None = None
        self._last_valid = time.monotonic()
        self._damaged = False
        self.upload_copies = 2  # chunk copies once the line is bad (the RUN is sent once)
        self.info_: P.Info | None = None

    @classmethod
    def open(cls, url: str, policy: LinkPolicy | None = None, connect_s: float = 10.0
             ) -> DeviceLink:
        return cls(_open_port(url, connect_s), policy, url)

    @property
    def what(self) -> str:
        return self.url or "the device"

    # --- bytes ------------------------------------------------------------------------------
    def _reconnect(self) -> None:
        """The port failed (e.g. the TCP peer went away): reopen it until give_up_after."""
        self.stats.reconnects += 1
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
        left = self.policy.give_up_after - (time.monotonic() - self._last_valid)
        self.port = _open_port(self.url, max(left, 0.5))
        self.reader = P.FrameReader()

    def _write(self, data: bytes) -> None:
        """Queue bytes; they go out in one write before the next read (`_flush`)."""
        self._out += data
        self.stats.bytes_out += len(data)
        self._written += len(data)

    def _flush(self) -> None:
        data, self._out = bytes(self._out), bytearray()
        for _ in range(2):
            if not data:
                return
            try:
                self.port.write(data)
                break
            except (serial.SerialException, OSError) as exc:
                if not self.url:
                    raise StqError(f"write to {self.what} failed: {exc}") from exc
                self._reconnect()

    def _read(self, wait: float) -> bytes:
        self._flush()
        if abs(wait - (self.port.timeout or 0)) > 0.001:
            self.port.timeout = wait
        try:
            return bytes(self.port.read(max(1, self.port.in_waiting)))
        except (serial.SerialException, OSError) as exc:
            if not self.url:
                raise StqError(f"read from {self.what} failed: {exc}") from exc
            self._reconnect()
            return b""

    def _pump(self, deadline: float) -> bool:
        """Read until ``deadline`` or a frame the host waits for arrives (True)."""
        while True:
            self._check_alive()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            data = self._read(max(0.001, min(0.05, left)))
            if not data:
                continue
            self.stats.bytes_in += len(data)
            got = False
            for raw in self.reader.feed(data):
                got |= self._accept(raw)
            if got or self._damaged:
                return got

    def _accept(self, raw: bytes) -> bool:
        try:
            frame = P.decode_frame(raw)
        except ValueError:
            self.stats.corrupt_frames += 1
            self._damaged = True
            return False
        if frame.version != P.VERSION:
            if frame.type == P.T_ERROR and P.error_code(frame.body) == P.E_VERSION:
                raise StqError(f"the device on {self.what} speaks framed protocol version "
                               f"{frame.version}, this stq speaks {P.VERSION}: rebuild and "
                               "flash its firmware (`stq build`, `stq flash`)")
            self.stats.stale_replies += 1
            return False
        self._last_valid = time.monotonic()
        if frame.seq not in self._expect:
            if frame.seq != P.NO_SEQ:
                self.stats.stale_replies += 1  # a redundant copy or an answer to a retry
            else:
                self._damaged = True  # the device got a damaged frame
            return False
        self._consumed = max(self._consumed, self._expect.pop(frame.seq))
        # the device answers in order: whatever was sent before this is read (or lost)
        self._expect = {k: v for k, v in self._expect.items() if v > self._consumed}
        self._inbox[frame.seq] = frame
        return True

    def _check_alive(self) -> None:
        quiet = time.monotonic() - self._last_valid
        if quiet > self.policy.give_up_after:
            s = self.stats
            raise StqError(
                f"the link to {self.what} is dead: no valid frame for {quiet:.0f} s "
                f"(--give-up-after {self.policy.give_up_after:g}); {s.bytes_out} bytes sent, "
                f"{s.bytes_in} received, {s.corrupt_frames} corrupt frames, {s.retries} retries")

    # --- frames -----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % P.NO_SEQ  # 0xFFFF is reserved for "unknown"
        return self._seq

    def _send(self, ftype: int, body: bytes, reply: bool = True, copies: int = 1) -> int:
        """Write one request (``copies`` times, same sequence number), within the window."""
        seq = self._next_seq()
        wire = P.encode_frame(ftype, seq, body) * copies
        window = self.info_.rx_window if self.info_ is not None else 256
        if self._written + len(wire) - self._consumed > window:
            self.stats.window_waits += 1
            deadline = time.monotonic() + self._rto
            while self._expect and self._written + len(wire) - self._consumed > window:
                if not self._pump(deadline):
                    break
            if self._written + len(wire) - self._consumed > window:
                # nothing answered within a timeout: the device drains its ring faster than
                # that whenever it is not computing (and no inference outlasts a timeout)
                self._expect.clear()
                self._consumed = self._written
        self._write(wire)
        if reply:
            self._expect[seq] = self._written
        return seq

    def _wait(self, seqs: set[int], timeout: float, any_: bool = False) -> bool:
        """Wait until every one (``any_``: one) of ``seqs`` is answered or ``timeout`` passed.
        After a damaged frame, stop waiting once the reply is overdue (1.5 round trips after
        the send) rather than at the timeout. False when it timed out in full."""
        start = time.monotonic()
        deadline = start + timeout
        self._damaged = False
        while True:
            done = seqs & self._inbox.keys()
            if (done and any_) or done == seqs:
                return True
            if self._damaged:
                self._damaged = False
                due = start + 1.5 * (self._srtt if self._srtt is not None else timeout / 2)
                deadline = min(deadline, max(time.monotonic() + 0.005, due))
            if time.monotonic() >= deadline:
                return time.monotonic() < start + timeout - 1e-3
            self._pump(deadline)

    def _round_done(self, ok: bool, t0: float, early: bool = False, sample: bool = True
                    ) -> None:
        """Adapt the timeout (RFC 6298 style) and the redundancy to how rounds go; ``early``:
        the round failed on a damaged frame before the timeout (no back-off)."""
        if ok and not sample:
            pass
        elif ok:  # Karn: no round-trip sample from an answer to a re-sent request
            rtt = time.monotonic() - t0
            self._srtt = rtt if self._srtt is None else 0.875 * self._srtt + 0.125 * rtt
            self._rto = min(self.policy.timeout, max(self.policy.min_timeout,
                                                     2.5 * self._srtt + 0.02))
        elif early:
            self.stats.retries += 1
            self.stats.early_retries += 1
        else:
            self.stats.retries += 1
            self.stats.timeouts += 1
            self._rto = min(self.policy.timeout, self._rto * 1.6)
            if time.monotonic() - self._last_valid > 3 * self._rto:
                self._resync()
        self._fail = 0.9 * self._fail + (0.0 if ok else 0.1)
        self.stats.copies = 1 if self._fail < 0.08 else 2 if self._fail < 0.4 else 3

    def _resync(self) -> None:
        """Nothing valid for a while: end any partial frame on both sides, start clean."""
        self.stats.resyncs += 1
        self._write(b"\x00\x00")
        self._flush()
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass
        self.reader = P.FrameReader()
        self._expect.clear()
        self._consumed = self._written
        self._preloaded = None

    def _fetch(self, ftype: int, body_at, first: P.Piece | None = None) -> bytes:  # noqa: ANN001
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
            runs.add(self._send(P.T_RUN, P.run_body(tag, profile, self.stats.copies)))
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

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> DeviceLink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _open_port(url: str, connect_s: float) -> serial.SerialBase:
    deadline = time.monotonic() + connect_s
    while True:
        try:
            port = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
            sock = getattr(port, "_socket", None)
            if sock is not None:  # socket:// URLs: no Nagle delay on small frames
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return port
        except (serial.SerialException, OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise StqError(f"cannot open device port {url}: {exc}") from exc
            time.sleep(0.2)
