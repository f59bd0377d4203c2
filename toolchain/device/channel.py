"""The byte and frame layer of the device link (docs/protocol.md): a pyserial port with
buffered writes, frames decoded and matched to the requests waiting for them, a send window no
larger than the device's receive ring, an adaptive timeout (RFC 6298 style, Karn's rule),
early retries after damaged frames, back-off, re-synchronisation and reconnection, and the
progress bound (``LinkPolicy.give_up_after``). ``toolchain.device.link.DeviceLink`` builds the
commands on it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from types import TracebackType

import serial

from toolchain.device import protocol as P
from toolchain.device.protocol import LinkPolicy, LinkStats
from toolchain.device.repair import REPLY_TYPES, repair
from toolchain.errors import StqError

_RECORD_REPLIES = {t | P.T_REPLY for t in (P.T_INFO, P.T_RUN, P.T_RESULT)}


class FrameChannel:
    """Requests and replies over any pyserial port (see the module docstring)."""

    def __init__(self, port: serial.SerialBase, policy: LinkPolicy | None = None,
                 url: str = "") -> None:
        self.port, self.url = port, url
        self.policy = policy or LinkPolicy()
        self.stats = LinkStats()
        self.reader = P.FrameReader()
        self._seq = 0
        self._expect: dict[int, float] = {}  # seq -> position in the output stream after it
        self._inbox: dict[int, P.Frame] = {}
        self._held: set[int] = set()  # RUNs the device holds pending: their missing replies are
        # copies of one already acted on (link.py)
        self._out = bytearray()
        self._written = 0.0  # bytes written so far
        self._consumed = 0.0  # bytes the device has certainly read
        self._jobs = {}  # inputs in flight (link.py)
        self._up = self._down = 0.0  # smoothed shares of damaged frames, each direction
        self._seen = (0, 0, 0, 0)
        self._frames_out = self._frames_in = 0
        self._nak_frames = 0  # device errors for frames it received damaged
        self._rto = min(self.policy.timeout, 1.0)
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._last_valid = time.monotonic()
        self._damaged = False
        self._weak: list[tuple[bytes, bytes]] = []  # weakly repaired record pieces (payload,
        # received bytes), awaiting a second copy
        self._damage_at = 0.0  # when the last damaged frame arrived (link.py)
        self.info_: P.Info | None = None
        # when the host owns the device's process (a QEMU board): why it is gone, or None
        self.gone: Callable[[], str | None] = lambda: None

    @classmethod
    def open(cls, url: str, policy: LinkPolicy | None = None, connect_s: float = 10.0
             ) -> FrameChannel:
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
        self.port = _open_port(self.url, max(left, 0.5), self._check_gone)
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
            fixed = self._repair(raw)
            if fixed is None:
                self._damaged = True
                return False
            self.stats.repaired_frames += 1
            frame = fixed
        if frame.version != P.VERSION:
            if frame.type == P.T_ERROR and P.error_code(frame.body) == P.E_VERSION:
                raise StqError(f"the device on {self.what} speaks framed protocol version "
                               f"{frame.version}, this stq speaks {P.VERSION}: rebuild and "
                               "flash its firmware (`stq build`, `stq flash`)")
            self.stats.stale_replies += 1
            return False
        self._last_valid = time.monotonic()
        self._frames_in += 1
        if frame.seq in self._held and frame.type == P.T_RUN | P.T_REPLY and \
                frame.body[:1] == b"\x01":
            self.stats.stale_replies += 1  # a copy of a missing-chunks reply acted on
            return False
        if frame.seq not in self._expect:
            if frame.seq != P.NO_SEQ:
                self.stats.stale_replies += 1  # a redundant copy or an answer to a retry
            else:
                self._damaged = True  # the device got a damaged frame
                self._nak_frames += 1
            return False
        self._consumed = max(self._consumed, self._expect.pop(frame.seq))
        # the device answers in order: whatever was sent before this is read (or lost)
        self._expect = {k: v for k, v in self._expect.items() if v > self._consumed}
        self._inbox[frame.seq] = frame
        return True

    def _repair(self, raw: bytes) -> P.Frame | None:
        """A damaged frame that one flipped bit, inserted or dropped byte explains (repair.py).
        A record piece repaired by solving for a dropped byte (weak: about 3 x 10^-6 of frames
        with more damage pass) counts only once a second copy, damaged elsewhere, repairs to
        the same bytes: a record piece becomes a result. Anything else repaired wrong costs a
        re-send, at worst (an error frame for a request in flight) a stopped session."""
        fixed = repair(raw, types=REPLY_TYPES)
        if fixed is None:
            return None
        payload = fixed.payload
        frame = P.frame_of(payload)
        record = frame.type in _RECORD_REPLIES and frame.body[:1] == b"\x00"
        if record and not fixed.strong:
            # confirmed by another copy damaged elsewhere (the same damage twice confirms
            # nothing: a line that garbles the same place alike)
            if not any(p == payload and r != raw for p, r in self._weak):
                self._weak.append((payload, raw))
                del self._weak[:-16]
                return None
        return frame

    def _check_gone(self) -> None:
        why = self.gone()
        if why is not None:  # no point waiting out --give-up-after for a process that exited
            raise StqError(f"the link to {self.what} is dead: {why}")

    def _check_alive(self) -> None:
        self._check_gone()
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
        self._frames_out += copies
        self._make_room(len(wire))
        self._write(wire)
        if reply:
            self._expect[seq] = self._written
        return seq

    def _make_room(self, n: int) -> None:
        """Wait until ``n`` more bytes fit in the device's receive ring (less a margin for a
        probe): bytes count as read once a later request is answered. With nothing asked, a
        probe (INFO at offset 0xFFFF, answered with an error at once) proves what was read."""
        window = (self.info_.rx_window if self.info_ is not None else 256) - 32

        def over() -> bool:
            return self._written + n - self._consumed > window

        if not over():
            return
        self.stats.window_waits += 1
        for _ in range(4):
            if not self._expect:
                probe = self._next_seq()
                self._write(P.encode_frame(P.T_INFO, probe, P.info_body(0xFFFF)))
                self._expect[probe] = self._written
            deadline = time.monotonic() + self._rto
            while over() and time.monotonic() < deadline:
                self._pump(deadline)
            if not over():
                return
            self._expect.clear()  # the probe or its answer was lost: probe again
        # nothing answered four timeouts long: the device drains its ring far faster than that
        # whenever it is not computing (and no inference outlasts a timeout)
        self._consumed = self._written

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
                deadline = min(deadline, max(time.monotonic() + 0.002, due))
            if time.monotonic() >= deadline:
                return time.monotonic() < start + timeout - 1e-3
            self._pump(deadline)

    def _round_done(self, ok: bool, t0: float, early: bool = False, sample: bool = True
                    ) -> None:
        """Adapt the timeout (RFC 6298 style) and the redundancy to how rounds go; ``early``:
        the round failed on a damaged frame before the timeout (no back-off)."""
        if ok and sample:  # Karn: no round-trip sample from an answer to a re-sent request
            rtt = time.monotonic() - t0
            if self._srtt is None:
                self._srtt, self._rttvar = rtt, rtt / 2
            else:
                self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
                self._srtt = 0.875 * self._srtt + 0.125 * rtt
            self._rto = min(self.policy.timeout, max(self.policy.min_timeout,
                                                     self._srtt + 4 * self._rttvar + 0.01))
        elif ok:
            pass
        elif early:
            self.stats.retries += 1
            self.stats.early_retries += 1
        else:
            self.stats.retries += 1
            self.stats.timeouts += 1
            self._rto = min(self.policy.timeout, self._rto * 1.6)
            if time.monotonic() - self._last_valid > 3 * self._rto:
                self._resync()
        self._adapt()

    def _adapt(self) -> None:
        """Redundancy from the damage measured in each direction (not from timeouts: on a
        loaded machine a clean link is slow, not bad): when more than 10 % of the frames sent
        draw an error frame from the device, or more than 5 % of the frames received are
        damaged (both smoothed), the device sends each RUN reply twice (``copies``)."""
        st = self.stats
        now = (self._frames_out, self._nak_frames, self._frames_in, st.corrupt_frames)
        d = [a - b for a, b in zip(now, self._seen, strict=True)]
        if d[0] >= 8:
            self._up = 0.8 * self._up + 0.2 * min(1.0, d[1] / d[0])
            self._seen = (now[0], now[1], self._seen[2], self._seen[3])
        if d[2] + d[3] >= 8:
            self._down = 0.8 * self._down + 0.2 * d[3] / (d[2] + d[3])
            self._seen = (self._seen[0], self._seen[1], now[2], now[3])
        st.copies = 1 if self._down < 0.05 and self._up < 0.1 else 2

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

    def close(self) -> None:
        self.port.close()

    def __enter__(self):  # noqa: ANN204 - the subclass
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _open_port(url: str, connect_s: float, check: Callable[[], None] = lambda: None
               ) -> serial.SerialBase:
    """Open ``url``, retrying for ``connect_s``; ``check`` raises when retrying is futile."""
    deadline = time.monotonic() + connect_s
    while True:
        check()
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
