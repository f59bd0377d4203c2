"""Host side of the minimal device commands (firmware/src/protocol_text.c), over pyserial.

The framed protocol (toolchain/device/link.py) is the robust one; this client serves `stq run`.

Works with any pyserial URL: a QEMU TCP serial (``socket://127.0.0.1:PORT``), a pty, or a real
board's ST-LINK virtual COM port (``/dev/ttyACM0``). Timeouts are generous because QEMU's UART
sometimes stalls for seconds; :meth:`StqDevice.sync` resynchronises after a lost boot banner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType

import serial

from toolchain.errors import StqError

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DeviceInfo:
    """The hello line: ``STQ model=... hash=... in=N out=M arena=A layers=L macs=X board=...``."""

    model: str
    hash: str
    input_bytes: int
    output_bytes: int
    arena_bytes: int
    layers: int
    macs: int
    board: str
    build: str
    counter: str

    @classmethod
    def parse(cls, line: str) -> DeviceInfo:
        fields = dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)
        try:
            return cls(
                model=fields["model"],
                hash=fields["hash"],
                input_bytes=int(fields["in"]),
                output_bytes=int(fields["out"]),
                arena_bytes=int(fields["arena"]),
                layers=int(fields["layers"]),
                macs=int(fields["macs"]),
                board=fields["board"],
                build=fields["build"],
                counter=fields["counter"],
            )
        except (KeyError, ValueError) as exc:
            raise StqError(f"device sent a malformed hello line: {line!r}") from exc


@dataclass(frozen=True)
class RunCost:
    """Cost of one inference: counter ticks, and executed instructions when known (QEMU)."""

    rc: int
    ticks: int
    instructions: int | None


@dataclass(frozen=True)
class LayerCost:
    index: int
    name: str
    ticks: int
    instructions: int | None


def _kv(line: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def _instr(value: str) -> int | None:
    return None if value == "na" else int(value)


class StqDevice:
    """A device running the stq firmware command loop."""

    def __init__(self, port: serial.SerialBase, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.port = port
        self.timeout = timeout
        self.info: DeviceInfo | None = None

    @classmethod
    def open(
        cls, url: str, timeout: float = DEFAULT_TIMEOUT_S, connect_s: float = 20.0
    ) -> StqDevice:
        """Open ``url`` (retrying while e.g. QEMU is still coming up) and say hello."""
        deadline = time.monotonic() + connect_s
        while True:
            try:
                port = serial.serial_for_url(url, baudrate=115200, timeout=timeout)
                break
            except (serial.SerialException, OSError) as exc:
                if time.monotonic() > deadline:
                    raise StqError(f"cannot open device port {url}: {exc}") from exc
                time.sleep(0.2)
        dev = cls(port, timeout)
        dev.sync()
        return dev

    # --- low level ---------------------------------------------------------------------------
    def _read_exact(self, n: int, what: str) -> bytes:
        data = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(data) < n:
            chunk = self.port.read(n - len(data))
            if chunk:
                data += chunk
            elif time.monotonic() > deadline:
                raise StqError(
                    f"device timed out after {self.timeout:.0f} s waiting for {what} "
                    f"({len(data)} of {n} bytes)"
                )
        return bytes(data)

    def _read_line(self, what: str, timeout: float | None = None) -> str:
        data = bytearray()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not data.endswith(b"\n"):
            c = self.port.read(1)
            if c:
                data += c
            elif time.monotonic() > deadline:
                raise StqError(f"device timed out waiting for {what} (got {bytes(data)!r})")
        line = data.decode("ascii", errors="replace").strip()
        if line.startswith("FAULT"):
            raise StqError(f"device fault: {line}")
        return line

    def _expect(self, prefix: str, what: str) -> str:
        line = self._read_line(what)
        while not line or (line.startswith("STQ ") and prefix != "STQ "):
            line = self._read_line(what)  # a late boot banner or a duplicate hello
        if not line.startswith(prefix):
            raise StqError(f"device answered {line!r} to {what}, expected {prefix!r}")
        return line

    # --- commands ----------------------------------------------------------------------------
    def sync(self, attempts: int = 4) -> DeviceInfo:
        """Drop whatever is pending (e.g. a half-lost boot banner), ask hello until it answers."""
        last: Exception | None = None
        for _ in range(attempts):
            self.port.reset_input_buffer()
            # '%' first: it ends a half-received MLPerf runner line (junk starting with a
            # lower-case letter), and is ignored between commands
            self.port.write(b"%H")
            self.port.flush()
            deadline = time.monotonic() + self.timeout
            try:
                while time.monotonic() < deadline:
                    line = self._read_line("the hello line", deadline - time.monotonic())
                    if line.startswith("STQ "):
                        self.info = DeviceInfo.parse(line)
                        return self.info
            except StqError as exc:
                last = exc
        raise StqError(f"device did not answer hello after {attempts} attempts: {last}")

    def hello(self) -> DeviceInfo:
        self.port.write(b"H")
        self.info = DeviceInfo.parse(self._expect("STQ ", "hello"))
        return self.info

    def _info(self) -> DeviceInfo:
        return self.info if self.info is not None else self.hello()

    def upload(self, data: bytes) -> None:
        n = self._info().input_bytes
        if len(data) != n:
            raise StqError(f"input is {len(data)} bytes, the device model expects {n}")
        self.port.write(b"I" + bytes(data))
        self._expect(f"OK I {n}", "input upload")

    def run(self) -> RunCost:
        self.port.write(b"R")
        kv = _kv(self._expect("OK R", "run"))
        return RunCost(rc=int(kv["rc"]), ticks=int(kv["ticks"]), instructions=_instr(kv["instr"]))

    def profile(self) -> list[LayerCost]:
        """Run again with the per-layer hook: cost of each layer."""
        self.port.write(b"P")
        n = int(self._expect("OK P", "profile").split()[2])
        layers = []
        for _ in range(n):
            idx, name, ticks, instr = self._read_line("a profile line").split()
            layers.append(LayerCost(int(idx), name, int(ticks), _instr(instr)))
        return layers

    def read_output(self) -> bytes:
        self.port.write(b"O")
        n = int(self._expect("OK O", "output").split()[2])
        return self._read_exact(n, "output bytes")

    def infer(self, data: bytes) -> tuple[bytes, RunCost]:
        """Upload, run, read back: (output bytes, cost)."""
        self.upload(data)
        cost = self.run()
        if cost.rc != 0:
            raise StqError(f"stq_model_invoke returned {cost.rc} on the device")
        return self.read_output(), cost

    def quit(self) -> None:
        """Ask an emulated device to exit QEMU (semihosting exit code 0)."""
        self.port.write(b"Q")
        self._expect("OK Q", "quit")

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> StqDevice:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
