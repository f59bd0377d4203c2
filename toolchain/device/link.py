"""Host client of the framed device protocol, version 4 (docs/protocol.md): finishes over a
noisy line and never records a wrong result.

Every reply must carry a sequence number the host is waiting for and a valid CRC-32, and a RUN
record must name the input (its CRC-32) it ran on; anything else is counted and ignored. Inputs
go up in small chunks, each with its own CRC; RUN answers the result or which chunks are still
missing, and only those are sent again. The next inputs' chunks and RUNs (up to the device's
input slots less one) go out behind the current one's, so the device has work queued while a
reply or a re-send is on its way; as it answers in order, a later answer shows an earlier
request lost, and that one is re-sent at once. Bytes not yet known to be
consumed by the device stay within the receive ring it reports (flow control). Retries are
bounded by progress, not by a count: the link keeps trying (adaptive timeout, exponential
back-off, replies sent twice when damage is measured, re-sends doubled when the device has
nothing else queued, re-synchronisation and
reconnection when nothing gets through) as long as valid frames keep arriving, and gives up
only after ``give_up_after`` seconds without any.

    with DeviceLink.open("socket://127.0.0.1:4321") as link:
        info = link.info()
        reply = link.infer(x_bytes)          # RunReply: output bytes, ticks, instructions
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from toolchain.device import protocol as P
from toolchain.device.channel import FrameChannel
from toolchain.device.protocol import LinkPolicy, LinkStats
from toolchain.errors import StqError

__all__ = ["AHEAD", "DeviceLink", "LinkPolicy", "LinkStats"]
AHEAD = 7  # inputs a caller passes ahead to infer(); the device's slots bound how many go out


@dataclass
class _Job:
    """One input on its way through the device: its RUN requests (seq -> send time)."""

    tag: int
    data: bytes
    profile: bool
    runs: dict[int, float] = field(default_factory=dict)
    sent: float = 0.0  # the last RUN sent, or the last answer to another input after it
    resent: float = 0.0  # when missing chunks were last re-sent
    retried: bool = False  # a RUN was re-sent (Karn: no round-trip sample then)
    held: int | None = None  # the RUN the device holds pending (its missing chunks re-sent)
    held_at: float = 0.0  # its answer's position in the output stream (after those chunks)
    reply: P.RunReply | None = None


class DeviceLink(FrameChannel):
    """A device speaking the framed protocol (INFO, chunked UPLOAD, RUN, RESULT, QUIT)."""

    _jobs: dict[int, _Job]
    _returned = 0.0  # when infer() last returned

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

    def _critical(self, job: _Job) -> bool:
        """Every other input in flight is answered: the device idles until this one is
        answered, so its re-sends go twice (a loss here costs a timeout, not a later answer)."""
        return all(o.reply is not None for o in self._jobs.values() if o is not job)

    def _upload(self, tag: int, data: bytes, indices: list[int] | None = None,
                copies: int = 1) -> None:
        size = self._info().chunk
        n = -(-len(data) // size)
        for i in range(n) if indices is None else indices:
            if 0 <= i < n:
                self._send(P.T_UPLOAD, P.upload_body(tag, i, data[i * size:(i + 1) * size]),
                           reply=False, copies=copies)
                self.stats.chunks_sent += 1

    def _run(self, job: _Job) -> None:
        # once the line is bad the device sends its reply twice (replies are not corrected
        # and cost the device less than requests); a re-send on the critical path goes twice
        copies = 2 if job.runs and self._critical(job) else 1
        seq = self._send(P.T_RUN, P.run_body(job.tag, job.profile, self.stats.copies),
                         copies=copies)
        job.runs[seq] = job.sent = time.monotonic()

    def _start(self, data: bytes, profile: bool, run: bool) -> _Job:
        if P.crc32(data) in self._jobs:
            self._drop_held(self._jobs[P.crc32(data)])
        job = self._jobs[P.crc32(data)] = _Job(P.crc32(data), data, profile)
        self._upload(job.tag, data)
        if run:
            self._run(job)
        return job

    def infer_all(self, blobs: Sequence[bytes], start: int = 0) -> Iterator[P.RunReply]:
        """``infer`` of ``blobs[start:]`` in order, each with the next AHEAD inputs behind it."""
        for i in range(start, len(blobs)):
            yield self.infer(blobs[i], blobs[i + 1 : i + 1 + AHEAD])

    def infer(self, data: bytes, next_data: bytes | Sequence[bytes] | None = None,
              profile: bool = False) -> P.RunReply:
        """Run one input; its output bytes and cost. ``next_data``: the input (or the inputs,
        in order) that will follow. Up to INFO's slots - 1 of them go out right behind this
        input's RUN, their chunks and, when a whole run record fits in one reply piece, their
        RUNs, so the device always has work queued while a reply or a re-send is on its way
        (docs/protocol.md)."""
        info = self._info()
        ahead = ([] if next_data is None else [next_data]
                 if isinstance(next_data, bytes | bytearray) else list(next_data))
        ahead = [bytes(d) for d in ahead[: max(0, info.slots - 1)]]
        for d in (data, *ahead):
            if len(d) != info.input_bytes:
                raise StqError(f"input is {len(d)} bytes, the device model expects "
                               f"{info.input_bytes}")
        tag = P.crc32(data)
        tags = [P.crc32(d) for d in ahead]
        self.stats.requests += 1
        now = time.monotonic()
        for j in self._jobs.values():  # the time the caller spent elsewhere does not count
            j.sent += max(0.0, now - self._returned) if self._returned else 0.0
        self._last_valid = now
        for t in [t for t in self._jobs if t != tag and t not in tags]:
            self._drop_held(self._jobs.pop(t))  # the caller went elsewhere: answers are stale
        job = self._jobs.get(tag)
        if job is None or job.profile != profile:
            job = self._start(data, profile, True)
        elif not job.runs:
            self._run(job)  # uploaded ahead, not run yet
        # RESULT only serves the record of the input that ran last: a record of several pieces
        # must be fetched before the next input runs, so only one-piece records are pipelined
        one_piece = 20 + info.output_bytes <= info.reply_chunk and not profile
        for d, t in zip(ahead, tags, strict=True):
            if t != tag and t not in self._jobs:
                self._start(d, profile, one_piece)
        try:
            while job.reply is None:
                self._serve()
        finally:
            self._returned = time.monotonic()
        self._drop_held(self._jobs.pop(tag))
        return job.reply

    def _hold(self, job: _Job, seq: int, at: float) -> None:
        """The device holds RUN ``seq`` of ``job`` pending: its answer comes once the bytes up
        to ``at`` (the re-sent chunks) are read; copies of its missing reply are ignored."""
        self._drop_held(job)
        job.held, job.held_at = seq, at
        self._held.add(seq)
        self._expect[seq] = at

    def _drop_held(self, job: _Job) -> None:
        if job.held is not None:
            self._held.discard(job.held)
            job.held = None

    def _serve(self) -> None:
        """Wait for the next reply to any RUN in flight and act on it; re-send a RUN as soon as
        its answer is known lost (a later request was answered: the device serves in order),
        overdue after a damaged frame, or timed out."""
        live = [j for j in self._jobs.values() if j.reply is None and j.runs]
        start = time.monotonic()
        # the newest RUN in flight has no later RUN whose answer would show it lost; after a
        # damaged frame, its answer is taken as lost once overdue (1.5 round trips)
        newest = max(live, key=lambda j: max(j.runs.values()))
        due = 1.5 * (self._srtt if self._srtt is not None else self._rto / 2)
        self._pump(max(start + 0.002, min(
            j.sent + (due if j is newest and self._damage_at > j.sent else self._rto)
            for j in live)))
        if self._damaged:
            self._damaged, self._damage_at = False, time.monotonic()
        for seq in list(self._inbox):
            job = next((j for j in self._jobs.values() if seq in j.runs), None)
            frame = self._inbox.pop(seq)
            if job is None:
                self.stats.stale_replies += 1  # an input the caller no longer waits for
            else:
                self._answer(job, seq, frame)
        now = time.monotonic()
        for job in live:
            if job.reply is not None:
                continue
            lost = not job.runs.keys() & self._expect.keys()  # a later request was answered
            overdue = job is newest and self._damage_at > job.sent and now > job.sent + due
            timed_out = now >= job.sent + self._rto
            if lost or overdue or timed_out:
                job.retried = True
                self._round_done(False, start, early=not timed_out or lost)
                self._run(job)

    def _answer(self, job: _Job, seq: int, frame: P.Frame) -> None:
        if frame.type == P.T_ERROR:
            self.stats.device_errors[P.error_text(frame.body).split(" (")[0]] += 1
            raise StqError(f"device refused RUN: {P.error_text(frame.body)}")
        asked = job.runs[seq]
        self._round_done(True, job.sent, sample=not job.retried and not job.resent
                         and seq == next(iter(job.runs)))
        now = time.monotonic()
        for other in self._jobs.values():  # the device has moved on to the next request
            other.sent = max(other.sent, now) if other is not job and other.runs else other.sent
        try:
            if frame.body[:1] == b"\x01":
                missing = P.Missing.parse(frame.body)
                if missing.tag != job.tag:
                    raise ValueError("missing-chunks reply for another input")
                if asked < job.resent:  # asked before the last re-send: its chunks are on the way
                    if job.held is not None:  # and the device now holds this RUN pending
                        self._hold(job, seq, self._expect.get(job.held, job.held_at))
                    return
                job.resent, job.retried = now, True
                self.stats.chunks_resent += len(missing.chunks)
                self._upload(job.tag, job.data, list(missing.chunks),
                             2 if self._critical(job) else 1)
                if len(missing.chunks) >= -(-len(job.data) // self._info().chunk):
                    self._run(job)  # none held: the device may have no slot, nothing pending
                    return
                # the device holds this RUN pending: the chunk that completes the input runs
                # it, and the answer comes with this sequence number, after the chunks
                self._hold(job, seq, self._written)
                job.runs[seq] = job.sent = now
                self.stats.held_runs += 1
                return
            first = P.Piece.parse(frame.body)
            rec = self._fetch(P.T_RESULT, lambda o: P.result_body(job.tag, o), first)
            reply = P.RunReply.parse(rec, self._info().output_bytes)
        except ValueError:
            self.stats.corrupt_frames += 1
            self._run(job)
            return
        if reply.input_crc != job.tag:  # cannot happen with intact frames: be certain
            self.stats.stale_replies += 1
            self._run(job)
            return
        if reply.rc != 0:
            raise StqError(f"stq_model_invoke returned {reply.rc} on the device")
        job.reply = reply

    def quit(self) -> None:
        """Ask an emulated board to exit (QEMU semihosting exit 0; the virtual board exits)."""
        for _ in range(3):
            self._write(P.encode_frame(P.T_QUIT, self._next_seq()))
        self._flush()
        self.port.flush()

