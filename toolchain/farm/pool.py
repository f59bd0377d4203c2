"""The devices of a farm and how to open one.

A farm is several endpoints of the same model: serial ports / pyserial URLs of flashed boards
(repeated ``--port``, or a devices file with one ``[NAME] URL`` per line) or ``--qemu N``
emulated boards started here, all running firmware of the same artifact. Each is opened with
``toolchain.device.connect.connect`` (a DeviceLink that has done its INFO handshake).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.device.link import DeviceLink
from toolchain.errors import StqError


@dataclass(frozen=True)
class DeviceSpec:
    """One device: ``port`` (a flashed board) or None (an emulated board started here)."""

    name: str
    port: str | None = None


@dataclass
class FarmSpec:
    """What ``--port`` (repeated), ``--devices FILE``, ``--qemu N`` and ``--ray`` asked for."""

    board: str | None
    artifact: Path
    work_dir: Path
    ports: tuple[str, ...] = ()
    devices_file: Path | None = None
    qemu: int = 0
    elf: Path | None = None
    timeout: float | None = None
    give_up_after: float | None = None
    ray: str | None = None  # a Ray cluster address ("auto", "ray://H:P") instead of local threads
    block: int = 8  # inputs per validation work item
    progress: bool = True
    on_item: Callable[[Any, Any], None] | None = field(default=None, repr=False)  # (device, item)

    def devices(self) -> list[DeviceSpec]:
        ports = list(self.ports)
        named: list[DeviceSpec] = []
        if self.devices_file is not None:
            named = read_devices_file(self.devices_file)
        named += [DeviceSpec(f"port{i}:{p}", p) for i, p in enumerate(ports)]
        if self.qemu < 0:
            raise StqError(f"--qemu must be >= 0, got {self.qemu}")
        named += [DeviceSpec(f"qemu{i}") for i in range(self.qemu)]
        if not named and not self.ray:  # on Ray the cluster's nodes bring the devices
            raise StqError("the farm has no devices: give --port (repeatable), --devices FILE "
                           "or --qemu N")
        dup = {d.name for d in named if [e.name for e in named].count(d.name) > 1}
        if dup:
            raise StqError(f"device names must be unique; repeated: {', '.join(sorted(dup))}")
        return named

    def firmware(self) -> Path | None:
        """The ELF every QEMU board runs: --elf, else built once from the artifact."""
        if self.elf is not None or self.board == "virtual":  # virtual: connect() builds it
            return self.elf
        from toolchain.firmware.boards import load_board
        from toolchain.firmware.build import build

        if self.board is None:
            raise StqError("--qemu N needs --board (an emulated board, e.g. netduinoplus2)")
        b = load_board(self.board)
        if not b.emulated:
            raise StqError(f"--qemu N (or 'qemu' in a devices file) needs an emulated board; "
                           f"{b.name} is not: give its ports instead")
        self.elf = build(self.artifact, b, self.work_dir / f"fw-{b.name}").elf
        return self.elf

    def is_farm(self) -> bool:
        """True when more than the plain one-device path was asked for."""
        return bool(self.qemu or self.devices_file or len(self.ports) > 1 or self.ray)


def read_devices_file(path: Path) -> list[DeviceSpec]:
    """``[NAME] URL`` per line (``#`` starts a comment); a line ``qemu`` is an emulated board."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise StqError(f"cannot read devices file {path}: {exc.strerror or exc}") from None
    out: list[DeviceSpec] = []
    for no, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise StqError(f"{path}:{no}: expected '[NAME] URL' (e.g. 'lab1 /dev/ttyACM0' or "
                           f"'qemu'), got {line.strip()!r}")
        name, url = (words[0], words[1]) if len(words) == 2 else (None, words[0])
        if url == "qemu":
            out.append(DeviceSpec(name or f"file-qemu{no}"))
        else:
            out.append(DeviceSpec(name or url, url))
    if not out:
        raise StqError(f"devices file {path} lists no devices")
    return out


@dataclass
class Device:
    """An open device of the farm."""

    spec: DeviceSpec
    link: DeviceLink

    @property
    def name(self) -> str:
        return self.spec.name


@contextlib.contextmanager
def open_device(spec: DeviceSpec, farm: FarmSpec) -> Iterator[Device]:
    """Connect to one device (starting its QEMU board when it has no port)."""
    from toolchain.device.connect import connect

    work = farm.work_dir / "farm" / spec.name.replace("/", "_").replace(":", "_")
    elf = farm.elf if spec.port is None else None
    with connect(farm.board, farm.artifact, work, spec.port, elf, farm.timeout,
                 farm.give_up_after) as link:
        yield Device(spec, link)
