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
from toolchain.firmware.mlperf import MlperfConfig, config_for_model_dir
from toolchain.firmware.project import (
    CROSS,
    MODEL_HEADERS,
    MODEL_SOURCES_REQUIRED,
    TARGET,
    generate_project,
)

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
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # region -> (used, size)

    def summary(self) -> str:
        parts = [
            f"{name} {used} / {size} B ({100.0 * used / size:.1f} %)"
            for name, (used, size) in self.usage.items()
        ]
        return ", ".join(parts)




def resolve_model_dir(path: Path) -> Path:
    """ARTIFACT (OUTDIR/model.stqa) or OUTDIR or OUTDIR/c -> the directory holding model.h."""
    if path.is_file():
        candidate = path.parent / "c"
    elif (path / "c").is_dir():
        candidate = path / "c"
    else:
        candidate = path
    if not path.exists():
        raise StqError(f"{path} does not exist (expected OUTDIR or OUTDIR/model.stqa)")
    missing = [
        f for f in (*MODEL_HEADERS, *MODEL_SOURCES_REQUIRED) if not (candidate / f).is_file()
    ]
    if missing:
        raise StqError(
            f"no generated model C sources in {candidate}: missing {', '.join(missing)} "
            f"(run `stq convert` first)"
        )
    return candidate














def build(
    model_path: Path,
    board: Board,
    build_dir: Path,
    jobs: int = 2,
    opt: str = "-O2",
    extra_cflags: str = "",
    mlperf_model: str | None = None,
    mlperf_energy: bool = False,
) -> BuildResult:
    """Generate the project and run make; raise StqError with one line on any failure.

    ``extra_cflags`` is passed as make's EXTRA_CFLAGS (e.g. ``-DSTQ_FW_FAULT_TEST=1``);
    ``mlperf_model`` (ic01/kws01/vww01/ad01, default from the input shape) and
    ``mlperf_energy`` set the MLPerf Tiny runner mode (toolchain/firmware/mlperf.py)."""
    model_dir = resolve_model_dir(model_path)
    mlperf = config_for_model_dir(model_dir, mlperf_model, mlperf_energy)
    if shutil.which(f"{CROSS}gcc") is None:
        raise StqError(
            f"{CROSS}gcc not found on PATH (install gcc-arm-none-eabi: scripts/setup.sh)"
        )
    build_dir.mkdir(parents=True, exist_ok=True)
    build_id = generate_project(model_dir, board, build_dir, opt, extra_cflags, mlperf)
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
        usage=region_usage(build_dir / f"{TARGET}.elf", board),
    )


def region_usage(elf: Path, board: Board) -> dict[str, tuple[int, int]]:
    """Bytes used in FLASH and RAM, from the ELF's allocated sections (`size -A`)."""
    out = subprocess.run(
        [f"{CROSS}size", "-A", "-d", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            sections[parts[0]] = (int(parts[2]), int(parts[1]))
    return usage_from_sections(sections, board)


def usage_from_sections(
    sections: dict[str, tuple[int, int]], board: Board
) -> dict[str, tuple[int, int]]:
    """FLASH and RAM (used, size) from allocated sections {name: (address, size)}; .data counts
    twice: in RAM, and in flash for its initial values."""
    flash = ram = 0
    for name, (addr, size) in sections.items():
        if board.flash.origin <= addr < board.flash.origin + board.flash.length:
            flash += size
        elif board.ram.origin <= addr < board.ram.origin + board.ram.length:
            ram += size
            if name == ".data":
                flash += size  # its initial values are copied from flash
    return {"FLASH": (flash, board.flash.length), "RAM": (ram, board.ram.length)}
