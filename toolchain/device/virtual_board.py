"""The virtual board: the firmware's protocol sources and the generated model C compiled for
the host with gcc, plus a tiny host HAL (firmware/host/stq_host_hal.c: UART on file
descriptors 0/1, counter from clock_gettime), serving the device protocol over a pty.

    with VirtualBoard(outdir) as vb:           # builds once (cached by content), starts it
        port = serial.serial_for_url(vb.port_url)   # /dev/pts/N, any pyserial client works
        vb.restart()                           # a "board reset": new process, same pty

``build_host_firmware`` also builds the sanitized fuzzer (firmware/host/stq_fuzz_main.c).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import tty
from pathlib import Path
from types import TracebackType

from toolchain.errors import StqError
from toolchain.firmware.build import resolve_model_dir
from toolchain.firmware.cflags import STRICT
from toolchain.firmware.mlperf import config_for_model_dir, header_lines
from toolchain.resources import firmware_dir

PROTOCOL_SOURCES = ("main.c", "protocol.c", "frame.c", "mlperf.c", "protocol_text.c", "link.c",
                    "text.c")
FUZZ_SOURCES = ("protocol.c", "frame.c", "mlperf.c", "protocol_text.c", "link.c", "text.c")
MODEL_SOURCES = ("model.c", "weights.c", "kernels.c")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1")
LIBFUZZER = ("-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", "-g", "-O1")
# kind -> (firmware sources, host sources, flags, default compiler, executable)
KINDS = {
    "board": (PROTOCOL_SOURCES, ("stq_host_hal.c",), ("-O2",), "gcc", "stq_virtual_board"),
    "fuzz": (FUZZ_SOURCES, ("stq_fuzz_main.c", "stq_fuzz_hal.c"), SANITIZE, "gcc", "stq_fuzz"),
    "libfuzzer": (FUZZ_SOURCES, ("stq_libfuzzer.c", "stq_fuzz_hal.c"), LIBFUZZER, "clang",
                  "stq_libfuzzer"),
}
CACHE = Path(tempfile.gettempdir()) / "stq-virtual-board"


def config_header(build_id: str, emulated: bool = True, mlperf: list[str] | None = None) -> str:
    return "\n".join([
        "/* Generated for the virtual board (host build): do not edit. */",
        "#ifndef STQ_BOARD_CONFIG_H",
        "#define STQ_BOARD_CONFIG_H",
        '#define STQ_BOARD_NAME "virtual"',
        '#define STQ_BOARD_MCU "host"',
        f"#define STQ_BOARD_EMULATED {int(emulated)}",
        "#define STQ_BOARD_CLOCK_HZ 1000000000u",
        f'#define STQ_BUILD_ID "{build_id}"',
        *(mlperf or []),
        "#endif",
        "",
    ])  # fmt: skip


def build_host_firmware(
    model_path: Path, fuzz: bool = False, cache: Path | None = None, cc: str | None = None,
    kind: str | None = None, mlperf_model: str | None = None,
) -> Path:
    """Compile the virtual board, or the sanitized random fuzzer (``fuzz``), or the libFuzzer
    target (``kind="libfuzzer"``, clang); return the exe. Cached by the content of every input,
    so a second call is free."""
    kind = kind or ("fuzz" if fuzz else "board")
    fw_sources, host_sources, kind_flags, default_cc, exe_name = KINDS[kind]
    cc = cc or default_cc
    cdir = resolve_model_dir(Path(model_path))
    if shutil.which(cc) is None:
        raise StqError(f"{cc} not found on PATH (needed to build the {kind} host firmware; "
                       "scripts/setup.sh installs it)")
    srcs = [firmware_dir() / "src" / s for s in fw_sources]
    srcs += [firmware_dir() / "host" / s for s in host_sources]
    srcs += [cdir / s for s in MODEL_SOURCES]
    headers = [*sorted((firmware_dir() / "src").glob("*.h")), firmware_dir() / "include" /
               "stq_firmware.h", cdir / "model.h", cdir / "kernels.h"]
    flags = [*STRICT, *kind_flags]
    mlperf = header_lines(config_for_model_dir(cdir, mlperf_model), None)  # MLPerf settings
    digest = hashlib.sha256(" ".join([cc, *flags, *mlperf]).encode())
    for f in [*srcs, *headers]:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    build_id = "vb-" + digest.hexdigest()[:12]
    out = (cache or CACHE) / build_id
    exe = out / exe_name
    if exe.is_file():
        return exe
    out.mkdir(parents=True, exist_ok=True)
    (out / "stq_board_config.h").write_text(
        config_header(build_id, emulated=kind == "board", mlperf=mlperf))
    tmp = exe.with_suffix(".tmp")
    cmd = [
        cc, *flags, f"-I{out}", f"-I{firmware_dir() / 'include'}", f"-I{firmware_dir() / 'src'}",
        f"-I{cdir}", *map(str, srcs), "-o", str(tmp),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StqError(f"host build of the virtual board failed:\n{proc.stderr.strip()[-2000:]}")
    tmp.replace(exe)
    return exe


class VirtualBoard:
    """The host-native firmware behind a pty: ``port_url`` is the pty's path (/dev/pts/N)."""

    def __init__(self, model_path: Path | str, exe: Path | None = None) -> None:
        self.exe = exe or build_host_firmware(Path(model_path))
        self.master: int | None = None
        self.slave: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.resets = 0

    @property
    def port_url(self) -> str:
        if self.slave is None:
            raise StqError("the virtual board is not started")
        return os.ttyname(self.slave)

    def start(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline, before anything is written
        tty.setraw(self.master)
        self._spawn()

    def _spawn(self) -> None:
        assert self.master is not None
        from toolchain.device.qemu import die_with_parent

        self.proc = subprocess.Popen(
            [str(self.exe)], stdin=self.master, stdout=self.master,
            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip

    def restart(self) -> None:
        """Reset the board: kill the process, start a new one on the same pty."""
        self._kill()
        self.resets += 1
        self._spawn()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self._kill()
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
