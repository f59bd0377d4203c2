"""Generate and run a plain Makefile project: firmware runtime + generated model, for one board.

The project directory is self-contained (firmware sources, the model's C sources, the board's
generated linker script and config header, a Makefile), so it builds by hand with ``make`` and
can be dropped into an IDE. The linker script is generated from the board's memory map: a model
too big for the board is the linker's own "region `FLASH' overflowed by N bytes", which
:func:`build` turns into one clear StqError line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.errors import StqError
from toolchain.firmware.boards import Board
from toolchain.firmware.cmake import cmake_files
from toolchain.firmware.mlperf import MlperfConfig, config_for_model_dir
from toolchain.firmware.project import (
    CROSS,
    MODEL_HEADERS,
    MODEL_SOURCES_REQUIRED,
    TARGET,
    _write_if_changed,
    generate_project,
    parse_protocols,
)
from toolchain.fsutil import ensure_writable_dir

_OVERFLOW_RE = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


@dataclass
class BuildResult:
    build_dir: Path
    elf: Path
    bin: Path
    hex: Path
    map: Path
    build_id: str
    mlperf: MlperfConfig | None = None
    protocols: tuple[str, ...] = ()
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # region -> (used, size)

    def summary(self) -> str:
        parts = [
            f"{name} {used} / {size} B ({100.0 * used / size:.1f} %)"
            for name, (used, size) in self.usage.items()
        ]
        return ", ".join(parts)


def check_firmware_elf(path: Path) -> None:
    """A 32-bit ARM ELF executable, or StqError naming the file and what it is instead."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as exc:
        raise StqError(f"cannot read firmware {path}: {exc.strerror} (run `stq build` first)"
                       ) from None
    if head[:4] != b"\x7fELF":
        raise StqError(f"firmware {path} is not an ELF file (expected firmware.elf from "
                       "`stq build`)")
    if head[4] != 1 or int.from_bytes(head[18:20], "little") != 40:  # ELFCLASS32, EM_ARM
        raise StqError(f"firmware {path} is an ELF file but not for a 32-bit ARM "
                       "microcontroller (expected firmware.elf from `stq build`)")
def resolve_model_dir(path: Path) -> Path:
    """ARTIFACT (OUTDIR/model.stqa) or OUTDIR or OUTDIR/c -> the directory holding model.h."""
    from toolchain.ir.outdir import C_DIR

    p = Path(path)
    if not p.exists():
        raise StqError(f"{p} does not exist (expected OUTDIR or OUTDIR/model.stqa)")
    candidate = p if p.is_dir() and p.name == C_DIR else (
        p.parent / C_DIR if p.is_file() else (p / C_DIR if (p / C_DIR).is_dir() else p))
    heads = sorted(candidate.glob("*model.h")) if candidate.is_dir() else []
    fp = heads[0].name[: -len("model.h")] if heads else ""  # the model's file prefix
    missing = [f"{fp}{f}" for f in (*MODEL_HEADERS, *MODEL_SOURCES_REQUIRED)
               if not (candidate / f"{fp}{f}").is_file()]
    if missing:
        raise StqError(f"no generated model C sources in {candidate}: missing "
                       f"{', '.join(missing)} (run `stq convert` first)")
    return candidate


def build(
    model_path: Path,
    board: Board,
    build_dir: Path,
    jobs: int = 2,
    opt: str = "-O2",
    extra_cflags: str = "",
    extra_model_dirs: tuple[Path, ...] = (),
    app: dict[str, bytes] | None = None,
    cmake: bool = False,
    mlperf_model: str | None = None,
    mlperf_energy: bool = False,
    protocols: str | tuple[str, ...] | None = None,
) -> BuildResult:
    """Generate the project and run make; raise StqError with one line on any failure.

    ``extra_cflags`` is passed as make's EXTRA_CFLAGS (e.g. ``-DSTQ_FW_FAULT_TEST=1``);
    ``extra_model_dirs`` and ``app`` as toolchain.firmware.project.generate_project takes them;
    with ``cmake`` a CMakeLists.txt and toolchain file that build the same ELF are written too;
    ``mlperf_model`` (ic01/kws01/vww01/ad01, default from the input shape) and
    ``mlperf_energy`` set the MLPerf Tiny runner mode (toolchain/firmware/mlperf.py);
    ``protocols`` ("binary,text,mlperf", the default, or a subset) the device protocols the
    firmware carries (toolchain/firmware/project.py: parse_protocols)."""
    chosen = parse_protocols(protocols)
    if "mlperf" not in chosen and (mlperf_model is not None or mlperf_energy):
        raise StqError(f"--mlperf-{'model' if mlperf_model is not None else 'energy'} needs "
                       f"the mlperf protocol, but --protocols is {','.join(chosen)}")
    model_dir = resolve_model_dir(model_path)
    mlperf = (config_for_model_dir(model_dir, mlperf_model, mlperf_energy)
              if "mlperf" in chosen else None)
    if shutil.which(f"{CROSS}gcc") is None:
        raise StqError(
            f"{CROSS}gcc not found on PATH (install gcc-arm-none-eabi: scripts/setup.sh)"
        )
    ensure_writable_dir(build_dir)
    build_id = generate_project(model_dir, board, build_dir, opt, extra_cflags,
                                tuple(extra_model_dirs), app, mlperf, chosen)
    if cmake:
        for name, text in cmake_files(build_dir, board, opt, extra_cflags, chosen).items():
            _write_if_changed(build_dir / name, text.encode())
    proc = subprocess.run(
        [
            "make",
            "-C",
            str(build_dir),
            f"-j{jobs}",
            "--no-print-directory",
            f"EXTRA_CFLAGS={extra_cflags}",
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    log = build_dir / "build.log"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        overflow = _OVERFLOW_RE.findall(proc.stderr)
        if overflow:
            regions = {"FLASH": board.flash, "RAM": board.ram}
            what = "; ".join(
                f"region {name} overflowed by {n} bytes "
                f"({name} is {regions[name].length} bytes)"
                if name in regions
                else f"region {name} overflowed by {n} bytes"
                for name, n in overflow
            )
            raise StqError(f"the model does not fit board {board.name}: {what} (log: {log})")
        first = next(
            (ln for ln in proc.stderr.splitlines() if "error" in ln.lower()),
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "make failed",
        )
        raise StqError(f"build for board {board.name} failed: {first.strip()} (log: {log})")
    return BuildResult(
        build_dir=build_dir,
        elf=build_dir / f"{TARGET}.elf",
        bin=build_dir / f"{TARGET}.bin",
        hex=build_dir / f"{TARGET}.hex",
        map=build_dir / f"{TARGET}.map",
        build_id=build_id,
        mlperf=mlperf,
        protocols=chosen,
        usage=region_usage(build_dir / f"{TARGET}.elf", board),
    )


def region_usage(elf: Path, board: Board) -> dict[str, tuple[int, int]]:
    """Bytes used in FLASH and RAM, from the ELF's allocated sections (toolchain/firmware/elf)."""
    from toolchain.firmware.elf import ElfImage

    return ElfImage(elf).usage(board)
