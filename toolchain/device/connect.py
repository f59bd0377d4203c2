"""Connecting to a device: one `connect()` for a board name (QEMU or the virtual board) or a
serial port, handing back a DeviceLink that has completed its INFO handshake."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from toolchain.device.link import DeviceLink, LinkPolicy
from toolchain.errors import StqError

READY_S = 10.0  # longest wait for a booting emulated board's banner


@contextlib.contextmanager
def connect(board: str | None, artifact: Path, work_dir: Path, port: str | None = None,
            elf: Path | None = None, timeout: float | None = None,
            give_up_after: float | None = None, serial: str = "tcp") -> Iterator[DeviceLink]:
    """A connected DeviceLink (INFO done): ``port`` (a serial port or pyserial URL of a flashed
    board), else ``board``: "virtual" (the host build behind a pty) or an emulated board
    (QEMU, running ``elf`` or a firmware built from ``artifact`` into ``work_dir``, its UART
    on a TCP port or, with ``serial="pty"``, on a pty).
    ``timeout``: ceiling of the per-request timeout; ``give_up_after``: seconds without one
    valid frame before the link counts as dead."""

    def policy(default_timeout: float, default_give_up: float) -> LinkPolicy:
        return LinkPolicy(timeout=timeout or default_timeout,
                          give_up_after=give_up_after or default_give_up)

    if port is not None:
        link = DeviceLink.open(port, policy(5.0, 30.0))
        try:
            _handshake(link, f"port {port}")
            yield link
        finally:
            link.close()
        return
    if board == "virtual":
        from toolchain.device.virtual_board import VirtualBoard

        with VirtualBoard(artifact) as vb:
            with DeviceLink.open(vb.port_url, policy(2.0, 30.0)) as link:
                _handshake(link, f"the virtual board ({vb.port_url})")
                yield link
        return
    from toolchain.device.qemu import QemuBoard
    from toolchain.firmware.boards import load_board

    if board is None:
        raise StqError("name a board (--board) or a serial port (--port)")
    b = load_board(board)
    if not b.emulated:
        raise StqError(f"board {b.name} is not emulated: flash it (`stq flash`) and pass "
                       "--port /dev/ttyACM0 (or any pyserial URL)")
    elf = elf
    if elf is None:
        from toolchain.firmware.build import build

        elf = build(artifact, b, work_dir / f"fw-{b.name}").elf
    with QemuBoard(elf, b.qemu_machine, timeout=24 * 3600, serial=serial) as qemu:
        with DeviceLink.open(qemu.port_url, policy(5.0, 60.0)) as link:
            link.gone = qemu.exit_reason
            link.wait_ready(READY_S)  # the boot banner: never send into a booting device
            _handshake(link, f"QEMU {b.qemu_machine} ({qemu.port_url})")
            yield link
            link.quit()
        qemu.wait(10.0)


def _handshake(link: DeviceLink, what: str) -> None:
    try:
        link.info()
    except StqError as exc:
        raise StqError(f"no device answered on {what}: {exc}") from None
