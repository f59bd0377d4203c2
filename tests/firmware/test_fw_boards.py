"""Board files: all required boards load with the right memory maps; bad files fail clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolchain.errors import StqError
from toolchain.firmware.boards import BOARDS_DIR, known_boards, load_board

REQUIRED = ("netduinoplus2", "nucleo-f446re", "nucleo-l4r5zi", "nucleo-h743zi2", "nucleo-u575zi-q")


def test_required_boards_load() -> None:
    assert set(REQUIRED) <= set(known_boards())
    for name in known_boards():
        board = load_board(name)
        assert board.name == name
        assert board.flash.origin == 0x08000000
        assert f"-mcpu={board.cpu}" in board.cflags


def test_netduinoplus2_is_the_qemu_f405() -> None:
    b = load_board("netduinoplus2")
    assert b.emulated and b.qemu_machine == "netduinoplus2"
    assert (b.flash.length, b.ram.origin, b.ram.length) == (1 << 20, 0x20000000, 128 * 1024)
    assert (b.uart.instance, b.uart.base, b.uart.family) == ("USART1", 0x40011000, "v1")
    assert b.cflags == ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]


def test_cores_and_uart_families() -> None:
    assert load_board("nucleo-h743zi2").cpu == "cortex-m7"
    assert load_board("nucleo-u575zi-q").cpu == "cortex-m33"
    for name in ("nucleo-l4r5zi", "nucleo-h743zi2", "nucleo-u575zi-q"):
        assert load_board(name).uart.family == "v2"
        assert not load_board(name).emulated


def test_unknown_board_lists_known_boards() -> None:
    with pytest.raises(StqError) as err:
        load_board("nucleo-nope")
    msg = str(err.value)
    assert "unknown board 'nucleo-nope'" in msg
    assert all(name in msg for name in REQUIRED)


def test_unknown_board_on_the_command_line(stq_cmd, tmp_path: Path, capsys) -> None:
    assert stq_cmd("build", [str(tmp_path), "--board", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stq build: error: unknown board 'nope'; known boards:")
    assert "\n" not in err


def _copy_without(tmp_path: Path, line_start: str, within: str | None = None) -> Path:
    src = (BOARDS_DIR / "netduinoplus2.toml").read_text().splitlines()
    table, out, dropped = None, [], False
    for line in src:
        if line.startswith("["):
            table = line.strip("[] ")
        if not dropped and table == within and line.startswith(line_start):
            dropped = True
            continue
        out.append(line)
    assert dropped
    (tmp_path / "netduinoplus2.toml").write_text("\n".join(out) + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("line", "table", "field"),
    [
        ("clock_hz", None, "clock_hz"),
        ("base", "uart", "uart.base"),
        ("length", "ram", "ram.length"),
    ],
)
def test_missing_field_names_file_and_field(tmp_path: Path, line, table, field) -> None:
    d = _copy_without(tmp_path, line, table)
    with pytest.raises(StqError) as err:
        load_board("netduinoplus2", d)
    assert str(d / "netduinoplus2.toml") in str(err.value)
    assert f"missing field '{field}'" in str(err.value)


def test_bad_value_is_named(tmp_path: Path) -> None:
    shutil.copy(BOARDS_DIR / "netduinoplus2.toml", tmp_path)
    p = tmp_path / "netduinoplus2.toml"
    p.write_text(p.read_text().replace('family = "f4"', 'family = "f9"'))
    with pytest.raises(StqError, match="field 'family' is 'f9', expected one of f4, l4, h7, u5"):
        load_board("netduinoplus2", tmp_path)
