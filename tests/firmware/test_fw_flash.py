"""`stq flash --dry-run`: the st-flash / OpenOCD / pyOCD command lines built from board files."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from toolchain.errors import StqError
from toolchain.firmware.boards import known_boards, load_board
from toolchain.firmware.flash import flash_command


def _dry_run(stq_cmd, capsys, argv: list[str]) -> list[str]:
    assert stq_cmd("flash", [*argv, "--dry-run"]) == 0
    return shlex.split(capsys.readouterr().out.strip())


@pytest.mark.parametrize(
    ("board", "target", "pyocd"),
    [
        ("nucleo-f446re", "target/stm32f4x.cfg", "stm32f446retx"),
        ("nucleo-l4r5zi", "target/stm32l4x.cfg", "stm32l4r5zitx"),
        ("nucleo-h743zi2", "target/stm32h7x.cfg", "stm32h743zitx"),
        ("nucleo-u575zi-q", "target/stm32u5x.cfg", "stm32u575zitx"),
    ],
)
def test_dry_run_command_lines(stq_cmd, capsys, board: str, target: str, pyocd: str) -> None:
    elf = "/fw/build/firmware.elf"
    assert _dry_run(stq_cmd, capsys, ["--board", board, "--elf", elf, "--tool", "st-flash"]) == [
        "st-flash", "--reset", "write", "/fw/build/firmware.bin", "0x08000000",
    ]  # fmt: skip
    assert _dry_run(stq_cmd, capsys, ["--board", board, "--elf", elf, "--tool", "openocd"]) == [
        "openocd", "-f", "interface/stlink.cfg", "-f", target,
        "-c", f"program {elf} verify reset exit",
    ]  # fmt: skip
    assert _dry_run(stq_cmd, capsys, ["--board", board, "--elf", elf, "--tool", "pyocd"]) == [
        "pyocd", "flash", "-t", pyocd, elf,
    ]  # fmt: skip


def test_bin_only_images_carry_the_flash_origin() -> None:
    board = load_board("nucleo-h743zi2")
    fw = Path("fw.bin")
    assert (
        flash_command(board, "openocd", None, fw)[-1]
        == "program fw.bin 0x08000000 verify reset exit"
    )
    assert flash_command(board, "pyocd", None, fw) == [
        "pyocd", "flash", "-t", "stm32h743zitx", "--base-address", "0x08000000", "fw.bin",
    ]  # fmt: skip


def test_every_board_has_flash_commands() -> None:
    for name in known_boards():
        board = load_board(name)
        for tool in ("openocd", "pyocd"):
            assert flash_command(board, tool, Path("fw.elf"), Path("fw.bin"))[0] == tool


def test_st_flash_needs_a_bin() -> None:
    with pytest.raises(StqError, match="st-flash writes a .bin"):
        flash_command(load_board("nucleo-f446re"), "st-flash", Path("fw.elf"), None)


def test_missing_image_is_a_clear_error(stq_cmd, capsys, tmp_path: Path) -> None:
    rc = stq_cmd("flash", ["--board", "nucleo-f446re", "--elf", str(tmp_path / "none.elf")])
    assert rc == 2
    assert "does not exist (run `stq build` first)" in capsys.readouterr().err
