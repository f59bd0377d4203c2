"""`stq build`: every board builds and links the converted model into ELF/BIN/HEX/map; the
generated Makefile project builds by hand; a model too big for a board fails at link time with
the region and the overflow in one line."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from toolchain.errors import StqError
from toolchain.firmware.boards import BOARDS_DIR, known_boards, load_board
from toolchain.firmware.build import build, resolve_model_dir


@pytest.mark.parametrize("board_name", known_boards())
def test_every_board_builds_and_links(fw_build, board_name: str) -> None:
    board = load_board(board_name)
    result = fw_build(board_name)
    for path in (result.elf, result.bin, result.hex, result.map):
        assert path.is_file() and path.stat().st_size > 0, path
    flash_used, flash_size = result.usage["FLASH"]
    ram_used, ram_size = result.usage["RAM"]
    assert (flash_size, ram_size) == (board.flash.length, board.ram.length)
    assert 0 < flash_used <= flash_size and board.stack_bytes < ram_used <= ram_size
    # the vector table: initial SP at the top of the reserved stack inside RAM, reset handler
    # in flash (Thumb bit set)
    sp, reset = struct.unpack("<II", result.bin.read_bytes()[:8])
    assert board.ram.origin < sp <= board.ram.origin + board.ram.length
    assert sp % 8 == 0
    assert board.flash.origin <= reset < board.flash.origin + flash_used and reset & 1
    assert f"-mcpu={board.cpu}" in (result.build_dir / "Makefile").read_text()


def test_makefile_project_builds_by_hand(fw_build, tmp_path: Path) -> None:
    original = fw_build("nucleo-u575zi-q")
    copy = tmp_path / "project"
    shutil.copytree(original.build_dir, copy)
    subprocess.run(["make", "-C", str(copy), "clean"], check=True, capture_output=True)
    assert not (copy / "firmware.elf").exists()
    subprocess.run(["make", "-C", str(copy), "-j2"], check=True, capture_output=True)
    assert (copy / "firmware.bin").read_bytes() == original.bin.read_bytes()


def test_artifact_path_finds_c_beside_it(fw_model_outdir: Path) -> None:
    artifact = fw_model_outdir / "model.stqa"
    if not artifact.is_file():
        pytest.skip("no model.stqa beside the C sources (STQ_TEST_MODEL_DIR stand-in)")
    assert resolve_model_dir(artifact) == fw_model_outdir / "c"
    assert resolve_model_dir(fw_model_outdir) == fw_model_outdir / "c"


def test_missing_model_sources_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        StqError, match=r"no generated model C sources .*\(run `stq convert` first\)"
    ):
        build(tmp_path, load_board("netduinoplus2"), tmp_path / "b")


def test_arena_too_big_for_ram_fails_at_link_time(fw_model_outdir, tmp_path, stq_cmd, capsys):
    board = load_board("netduinoplus2")
    model = tmp_path / "big" / "c"
    shutil.copytree(resolve_model_dir(fw_model_outdir), model)
    header = model / "model.h"
    text, n = re.subn(
        r"#define STQ_ARENA_BYTES[ \t]+[^\n]*",
        f"#define STQ_ARENA_BYTES {board.ram.length}u",
        header.read_text(),
    )
    assert n == 1
    header.write_text(text)
    rc = stq_cmd("build", [str(model.parent), "--board", board.name, "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "\n" not in err
    m = re.search(r"does not fit board netduinoplus2: region RAM overflowed by (\d+) bytes", err)
    assert m, err
    # at least the arena, the stack and the firmware's own .bss are over
    assert int(m.group(1)) >= board.stack_bytes


def test_image_too_big_for_flash_fails_at_link_time(fw_build, tmp_path, fw_model_outdir):
    used = fw_build("netduinoplus2").usage["FLASH"][0]
    boards = tmp_path / "boards"
    boards.mkdir()
    text = (BOARDS_DIR / "netduinoplus2.toml").read_text()
    small = (used // 2) & ~0xFF
    text = text.replace("length = 0x100000", f"length = 0x{small:X}")
    (boards / "netduinoplus2.toml").write_text(text)
    board = load_board("netduinoplus2", boards)
    assert board.flash.length == small
    with pytest.raises(StqError) as err:
        build(fw_model_outdir, board, tmp_path / "b")
    m = re.search(
        r"region FLASH overflowed by (\d+) bytes \(FLASH is (\d+) bytes\)", str(err.value)
    )
    assert m, str(err.value)
    assert int(m.group(2)) == small and int(m.group(1)) > 0
