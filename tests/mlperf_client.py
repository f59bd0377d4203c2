"""A client of the MLPerf Tiny runner's wire protocol that behaves on the wire as the official
runner does (mlcommons/tiny benchmark/runner: serial_device.py, device_under_test.py,
script.py, main.py; the summary with citations is docs/protocol.md):

- a command is ASCII text plus '%', nothing else (no CR/LF);
- the reply is read byte by byte and decoded as UTF-8 (a bad byte kills the runner's reader
  thread: an error here), '\\r' and '\\0' are dropped, lines end at '\\n'; the reply ends with the
  first line that *contains* "m-ready"; every line must come within 5 s, or the command fails;
- uploads are "db load N%" and then "db <lowercase hex>%" lines of 31 bytes;
- "infer N W%" (always both numbers) is parsed for ``^m-lap-us-([0-9]+)$`` (first = start,
  last = end) and ``^m-results-\\[([^]]+)\\]$`` (comma-separated floats);
- top-1 the runner's way: divide the vector by its sum (not a softmax), then argmax.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

END_OF_RESPONSE = "m-ready"
LINE_TIMEOUT_S = 5.0  # SerialDevice._timeout
DB_BYTES = 31  # DUT._max_bytes without a power manager
RE_NAME = re.compile(r"^m-(name)-dut-\[([^]]+)]$")
RE_PROFILE = re.compile(r"^m-(model|profile)-\[([^]]+)]$")
RE_RESULTS = re.compile(r"^m-results-\[([^]]+)\]$")
RE_LAP = re.compile(r"^m-lap-us-([0-9]+)$")


class RunnerError(RuntimeError):
    pass


@dataclass
class InferResult:
    lines: list[str]
    results: list[float] = field(default_factory=list)
    start_us: int | None = None
    end_us: int | None = None


class RunnerDut:
    """One DUT serial port (any pyserial URL: /dev/pts/N, /dev/ttyACM0, socket://...)."""

    def __init__(self, url: str, baud: int = 115200, line_timeout: float = LINE_TIMEOUT_S):
        import serial

        self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.1)
        self.line_timeout = line_timeout
        self._pending = bytearray()
        self._lines: list[str] = []

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> RunnerDut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _feed(self, chunk: bytes) -> None:
        for b in chunk:
            if b == 0x0A:
                try:
                    self._lines.append(bytes(self._pending).decode("utf-8"))
                except UnicodeDecodeError as e:
                    raise RunnerError(f"non-UTF-8 line from the DUT: {bytes(self._pending)!r}"
                                      ) from e
                self._pending.clear()
            elif b not in (0x0D, 0x00):
                self._pending.append(b)

    def drain(self, quiet_s: float = 0.3) -> list[str]:
        """Whatever the DUT prints until it has been quiet for quiet_s (pre-command lines)."""
        deadline = time.monotonic() + quiet_s
        while time.monotonic() < deadline:
            chunk = self.port.read(256)
            if chunk:
                self._feed(chunk)
                deadline = time.monotonic() + quiet_s
        out, self._lines = self._lines, []
        return out

    def _line(self) -> str | None:
        deadline = time.monotonic() + self.line_timeout
        while not self._lines:
            if time.monotonic() >= deadline:
                return None
            chunk = self.port.read(max(1, self.port.in_waiting))
            if chunk:
                self._feed(chunk)
        return self._lines.pop(0)

    def send_command(self, command: str) -> list[str]:
        """Write 'command%'; the non-empty reply lines up to the one containing m-ready."""
        self.port.write((command + "%").encode("ascii"))
        self.port.flush()
        lines: list[str] = []
        while True:
            line = self._line()
            if line is None:
                raise RunnerError(f"No response to command {command}")
            if line:
                lines.append(line)
            if END_OF_RESPONSE in line:
                return lines

    # --- the runner's DUT class ---------------------------------------------------------------

    def get_name(self) -> str | None:
        names = [m.group(2) for m in map(RE_NAME.match, self.send_command("name")) if m]
        return names[-1] if names else None

    def get_profile(self) -> dict[str, str]:
        return {m.group(1): m.group(2)
                for m in map(RE_PROFILE.match, self.send_command("profile")) if m}

    def load(self, data: bytes) -> list[str]:
        last = self.send_command(f"db load {len(data)}")
        for i in range(0, len(data), DB_BYTES):
            last = self.send_command("db " + data[i:i + DB_BYTES].hex())
        return last

    def infer(self, iterations: int, warmups: int) -> InferResult:
        return parse_infer(self.send_command(f"infer {iterations} {warmups}"))


def parse_infer(lines: list[str]) -> InferResult:
    """script.py's _gather_infer_results: the last m-results, the first and last m-lap-us."""
    r = InferResult(lines)
    for line in lines:
        m = RE_RESULTS.match(line)
        if m:
            try:
                r.results = [float(x) for x in m.group(1).split(",") if x.strip()]
            except ValueError:
                r.results = []
            continue
        m = RE_LAP.match(line)
        if m:
            if r.start_us is None:
                r.start_us = int(m.group(1))
            else:
                r.end_us = int(m.group(1))
    return r


def runner_top1(results: list[float]) -> int:
    """main.py: normalize by the sum (ZeroDivisionError on a zero sum), then numpy argmax."""
    total = sum(results)
    if total == 0:
        raise ZeroDivisionError("m-results sum to 0: the runner crashes here")
    v = [s / total for s in results]
    return max(range(len(v)), key=lambda i: (v[i], -i))
