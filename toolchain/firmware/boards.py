"""Board descriptions: one TOML file per board in ``boards/``, loaded and validated here.

A board file names the MCU and core, the compiler's CPU/FPU flags, the flash and RAM regions
the linker script is generated from, the UART used by the device command loop, how to flash it
and whether it is emulated (QEMU), and (optional ``[timestamp] pin``) the GPIO an MLPerf Tiny
energy build pulses. Every other field is required; a missing or mistyped one is an
``StqError`` naming the file and the field.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.errors import StqError
from toolchain.resources import boards_dir

BOARDS_DIR = boards_dir()  # the shipped boards
BOARDS_ENV = "STQ_BOARDS_DIR"  # a user's own board files (also `--boards-dir DIR`)

FAMILIES = ("f4", "l4", "h7", "u5")
CPUS = ("cortex-m4", "cortex-m7", "cortex-m33")
UART_FAMILIES = ("v1", "v2")
UART_KINDS = ("usart", "lpuart")
FLOAT_ABIS = ("hard", "softfp", "soft")
# RCC clock-enable registers the firmware knows, per family (offsets in firmware/src/clock_*.c).
RCC_ENABLE_REGS = {
    "f4": ("APB1ENR", "APB2ENR"),
    "l4": ("APB1ENR1", "APB1ENR2", "APB2ENR"),
    "h7": ("APB1LENR", "APB2ENR"),
    "u5": ("APB1ENR1", "APB1ENR2", "APB2ENR"),
}
_PIN_RE = re.compile(r"^P([A-K])([0-9]|1[0-5])$")


@dataclass(frozen=True)
class Region:
    origin: int
    length: int


@dataclass(frozen=True)
class Uart:
    instance: str
    base: int
    family: str
    kind: str
    irq: int
    tx_pin: str
    rx_pin: str
    af: int
    baud: int
    clock_hz: int
    rcc_reg: str
    rcc_bit: int


@dataclass(frozen=True)
class Program:
    openocd_interface: str
    openocd_target: str
    pyocd_target: str
    st_flash: bool


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    mcu: str
    family: str
    core: str
    cpu: str
    fpu: str
    float_abi: str
    clock_hz: int
    emulated: bool
    stack_bytes: int
    flash: Region
    ram: Region
    uart: Uart
    program: Program
    qemu_machine: str
    path: Path
    timestamp_pin: str | None = None  # [timestamp] pin: MLPerf energy-mode GPIO (open drain)

    @property
    def cflags(self) -> list[str]:
        """The target flags for gcc: CPU, Thumb, FPU and float ABI."""
        flags = [f"-mcpu={self.cpu}", "-mthumb"]
        if self.float_abi != "soft":
            flags.append(f"-mfpu={self.fpu}")
        flags.append(f"-mfloat-abi={self.float_abi}")
        return flags


def pin_port_index(pin: str) -> int:
    """'PA9' -> 0 (port A), 'PG7' -> 6."""
    return ord(pin[1]) - ord("A")


def pin_number(pin: str) -> int:
    return int(pin[2:])


class _Fields:
    """Typed access to one TOML table that names the file and field on every error."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix

    def _get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        name = f"{self.prefix}{key}"
        if key not in self.table:
            raise StqError(f"board file {self.path}: missing field '{name}'")
        value = self.table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise StqError(f"board file {self.path}: field '{name}' must be {what}, got {value!r}")
        return value

    def str(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value: str = self._get(key, str, "a string")
        if choices is not None and value not in choices:
            raise StqError(
                f"board file {self.path}: field '{self.prefix}{key}' is {value!r}, "
                f"expected one of {', '.join(choices)}"
            )
        return value

    def int(self, key: str, minimum: int = 0) -> int:
        value: int = self._get(key, int, "an integer")
        if value < minimum:
            raise StqError(
                f"board file {self.path}: field '{self.prefix}{key}' must be >= {minimum}"
            )
        return value

    def bool(self, key: str) -> bool:
        value: bool = self._get(key, bool, "true or false")
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self.path, self._get(key, dict, "a table"), f"{self.prefix}{key}.")

    def pin(self, key: str) -> str:
        value = self.str(key)
        if not _PIN_RE.match(value):
            raise StqError(f"board file {self.path}: field '{self.prefix}{key}' must look like PA9")
        return value


def user_boards_dir() -> Path | None:
    """The user's board directory (``--boards-dir`` / STQ_BOARDS_DIR), or None."""
    value = os.environ.get(BOARDS_ENV, "")
    if not value:
        return None
    d = Path(value)
    if not d.is_dir():
        raise StqError(f"boards directory {d} (--boards-dir / {BOARDS_ENV}) is not a directory")
    return d


def _search_dirs(boards_dir: Path | None) -> list[Path]:
    if boards_dir is not None:
        return [boards_dir]
    user = user_boards_dir()
    return [user, BOARDS_DIR] if user is not None else [BOARDS_DIR]


def known_boards(boards_dir: Path | None = None) -> list[str]:
    """Board names: the user's (--boards-dir) and the shipped ones."""
    return sorted({p.stem for d in _search_dirs(boards_dir) for p in d.glob("*.toml")})


def board_paths(boards_dir: Path | None = None) -> dict[str, Path]:
    """name -> board file; a user's board file shadows a shipped one of the same name."""
    found: dict[str, Path] = {}
    for d in _search_dirs(boards_dir):
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, p)
    return dict(sorted(found.items()))


def load_board_file(path: Path) -> Board:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StqError(f"board file {path}: cannot read it: {exc}") from exc
    f = _Fields(path, data)
    family = f.str("family", FAMILIES)
    uart_f, prog_f = f.sub("uart"), f.sub("program")
    rcc = uart_f._get("rcc_enable", list, "a [register, bit] pair")
    if len(rcc) != 2 or rcc[0] not in RCC_ENABLE_REGS[family] or not isinstance(rcc[1], int):
        raise StqError(
            f"board file {path}: field 'uart.rcc_enable' must be [register, bit] with a register "
            f"in {', '.join(RCC_ENABLE_REGS[family])}, got {rcc!r}"
        )
    emulated = f.bool("emulated")
    board = Board(
        name=f.str("name"),
        description=f.str("description"),
        mcu=f.str("mcu"),
        family=family,
        core=f.str("core", CPUS),
        cpu=f.str("cpu", CPUS),
        fpu=f.str("fpu"),
        float_abi=f.str("float_abi", FLOAT_ABIS),
        clock_hz=f.int("clock_hz", 1),
        emulated=emulated,
        stack_bytes=f.int("stack_bytes", 256),
        flash=Region(f.sub("flash").int("origin"), f.sub("flash").int("length", 1)),
        ram=Region(f.sub("ram").int("origin"), f.sub("ram").int("length", 1)),
        uart=Uart(
            instance=uart_f.str("instance"),
            base=uart_f.int("base"),
            family=uart_f.str("family", UART_FAMILIES),
            kind=uart_f.str("kind", UART_KINDS),
            irq=uart_f.int("irq"),
            tx_pin=uart_f.pin("tx_pin"),
            rx_pin=uart_f.pin("rx_pin"),
            af=uart_f.int("af"),
            baud=uart_f.int("baud", 1),
            clock_hz=uart_f.int("clock_hz", 1),
            rcc_reg=str(rcc[0]),
            rcc_bit=int(rcc[1]),
        ),
        program=Program(
            openocd_interface=prog_f.str("openocd_interface"),
            openocd_target=prog_f.str("openocd_target"),
            pyocd_target=prog_f.str("pyocd_target"),
            st_flash=prog_f.bool("st_flash"),
        ),
        qemu_machine=f.str("qemu_machine") if emulated else "",
        path=path,
        timestamp_pin=f.sub("timestamp").pin("pin") if "timestamp" in data else None,
    )
    if board.name != path.stem:
        raise StqError(f"board file {path}: field 'name' is {board.name!r}, expected {path.stem!r}")
    if board.uart.af > 15 or board.uart.irq > 239:
        raise StqError(f"board file {path}: field 'uart.af' must be 0..15 and 'uart.irq' 0..239")
    if board.stack_bytes % 8:
        raise StqError(f"board file {path}: field 'stack_bytes' must be a multiple of 8")
    return board


def load_board(name: str, boards_dir: Path | None = None) -> Board:
    """Load a board by name (the file stem), or raise StqError listing the known boards."""
    known = board_paths(boards_dir)
    listing = ", ".join(known) or "(none)"
    if not name or "/" in name or "\\" in name or name.startswith(".") or name.endswith(".toml"):
        raise StqError(f"board '{name}' is not a board name (known boards: {listing}); for a "
                       f"board file of your own pass --boards-dir DIR and its name")
    if name not in known:
        raise StqError(f"unknown board '{name}'; known boards: {listing} (your own board files: "
                       f"--boards-dir DIR)")
    return load_board_file(known[name])
