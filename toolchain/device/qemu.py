"""Run firmware on QEMU's emulated boards, always bounded and never leaving QEMU behind.

``QemuBoard`` starts ``qemu-system-arm`` in its own process group under coreutils ``timeout``
(a hard ceiling of its wall time), with the first serial port on a loopback TCP server that
waits for the host to connect before the guest starts (so the boot banner is never lost), and
kills the whole group on exit, on exceptions and on KeyboardInterrupt. Neither outlives the
Python process, even on SIGKILL: ``timeout`` gets PR_SET_PDEATHSIG(SIGKILL) from a preexec
hook, and QEMU gets the same towards ``timeout`` through util-linux ``setpriv --pdeathsig``
(the death signal fires when the parent *thread* ends: start boards from a thread that lives
as long as they do, e.g. the main thread)::

    with QemuBoard(elf) as board:
        dev = StqDevice.open(board.port_url)
        ...
    board.returncode  # the semihosting exit code once QEMU has stopped
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from toolchain.errors import StqError

QEMU = "qemu-system-arm"
DEFAULT_TIMEOUT_S = 300.0
_LIVE: set[QemuBoard] = set()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the (spawning thread of the) parent dies; exits at
    once if the parent is already gone."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)
    if os.getppid() != parent:
        os._exit(127)


def orphan_guard() -> list[str]:
    """The command prefix that makes the next exec'd program die with its parent."""
    if shutil.which("setpriv") is None:
        return []
    return ["setpriv", "--pdeathsig", "KILL", "--"]


SERIALS = ("tcp", "pty")
_PTY_RE = re.compile(r"char device redirected to (/dev/pts/\d+)")


def qemu_command(elf: Path, machine: str, port: int, serial: str = "tcp") -> list[str]:
    """The QEMU command line (without the timeout wrapper); ``serial="pty"`` puts the first
    UART on a pseudo-terminal (QEMU prints its /dev/pts/N path) instead of the TCP port."""
    cmd = [
        QEMU,
        "-M", machine,
        "-nographic",
        "-monitor", "none",
        "-kernel", str(elf),
        "-icount", "shift=0",
        "-semihosting-config", "enable=on,target=native",
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
    ]  # fmt: skip
    if serial == "pty":
        cmd[-1] = "pty"
    return cmd


class QemuBoard:
    """One QEMU instance running ``elf``; a context manager.

    ``timeout`` (seconds of wall time) bounds QEMU's whole life. ``port_url`` is a pyserial URL
    (``socket://127.0.0.1:PORT``) for the first serial port (USART1 on netduinoplus2).
    """

    def __init__(
        self, elf: Path | str, machine: str = "netduinoplus2", timeout: float = DEFAULT_TIMEOUT_S,
        serial: str = "tcp",
    ) -> None:
        if serial not in SERIALS:
            raise StqError(f"serial {serial!r} is not one of {', '.join(SERIALS)}")
        self.serial = serial
        self.pty: str | None = None  # /dev/pts/N once started with serial="pty"
        self.elf = Path(elf)
        self.machine = machine
        self.timeout = timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_dir: tempfile.TemporaryDirectory[str] | None = None
        self.log_path: Path | None = None
        self.returncode: int | None = None

    @property
    def port_url(self) -> str:
        """A pyserial URL: the pty's path, or socket://127.0.0.1:PORT."""
        if self.serial == "pty":
            if self.pty is None:
                raise StqError("QEMU is not started")
            return self.pty
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not self.elf.is_file():
            raise StqError(f"firmware {self.elf} does not exist (run `stq build` first)")
        if shutil.which(QEMU) is None:
            raise StqError(f"{QEMU} not found on PATH (install qemu-system-arm: scripts/setup.sh)")
        self._log_dir = tempfile.TemporaryDirectory(prefix="stq-qemu-")
        self.log_path = Path(self._log_dir.name) / "qemu.log"
        for _attempt in range(5):
            self.port = _free_port()
            cmd = [
                "timeout", "--kill-after=5", f"{self.timeout:.0f}", *orphan_guard(),
                *qemu_command(self.elf, self.machine, self.port, self.serial),
            ]  # fmt: skip
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            _LIVE.add(self)
            if self.serial == "pty":
                if self._wait_pty():
                    return
                break
            if self._wait_listening():
                return
            self.stop()
            if "Address already in use" not in self.log():
                break
        raise StqError(f"QEMU did not start: {self.log().strip()[-400:] or 'no output'}")

    def _wait_listening(self, limit_s: float = 20.0) -> bool:
        """Wait until QEMU listens on the port (polled without connecting) or has died."""
        deadline = time.monotonic() + limit_s
        needle = f":{self.port:04X} 00000000:0000 0A"  # LISTEN in /proc/net/tcp
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                if needle in Path("/proc/net/tcp").read_text():
                    return True
            except OSError:  # no procfs: give QEMU a moment and let the client retry
                time.sleep(0.5)
                return True
            time.sleep(0.05)
        return False

    def _wait_pty(self, limit_s: float = 20.0) -> bool:
        """Wait until QEMU printed its pty path (the guest is then already running: output
        written while nobody holds the pty open is dropped by QEMU)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and self.proc is not None and self.proc.poll() is None:
            m = _PTY_RE.search(self.log())
            if m:
                self.pty = m.group(1)
                return True
            time.sleep(0.05)
        return False

    def log(self) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int | None:
        """Wait for QEMU to exit by itself (semihosting exit); its exit code or None."""
        if self.proc is None:
            return self.returncode
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def exit_reason(self) -> str | None:
        """None while QEMU runs (or was never started); else how it ended."""
        rc = None if self.proc is None else self.proc.poll()
        if rc is None:
            return None
        # the process is `timeout`, which exits 128 + N when QEMU dies of signal N
        how = f"signal {-rc}" if rc < 0 else f"signal {rc - 128}" if rc > 128 else f"code {rc}"
        return f"its QEMU exited ({how})"

    def stop(self) -> None:
        """Kill QEMU's process group (TERM, then KILL) and reap it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.returncode is None:
            self.returncode = proc.poll()
        _LIVE.discard(self)

    def close(self) -> None:
        self.stop()
        if self._log_dir is not None:
            self._log_dir.cleanup()
            self._log_dir = None

    def __enter__(self) -> QemuBoard:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        # keep the log readable after a failure inside the block; cleaned at interpreter exit
        if exc_type is None:
            self.close()


@atexit.register
def _kill_leftovers() -> None:
    for board in list(_LIVE):
        board.stop()
