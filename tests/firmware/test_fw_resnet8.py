"""A ResNet-8-sized ternary model (the MLPerf Tiny topology, 12.5 M MACs) builds, links and fits
on every board, and its arena and weights land in the linked image."""

from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from toolchain.firmware.boards import known_boards, load_board
from toolchain.firmware.build import build


@pytest.fixture(scope="module")
def resnet8_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolchain.frontend.keras import convert_model
    from toolchain.pipeline.convert import convert_graph
    from toolchain.training import zoo

    out = tmp_path_factory.mktemp("resnet8")
    g = convert_model(zoo.resnet8("stq"), name="resnet8")
    assert g.macs() == 12_501_632
    convert_graph(g, out)
    return out


@pytest.mark.parametrize("board_name", known_boards())
def test_resnet8_builds_on_every_board(resnet8_outdir: Path, tmp_path: Path,
                                       board_name: str) -> None:
    board = load_board(board_name)
    result = build(resnet8_outdir, board, tmp_path / board_name)
    flash_used, flash_size = result.usage["FLASH"]
    ram_used, ram_size = result.usage["RAM"]
    assert flash_used <= flash_size and ram_used <= ram_size
    with open(result.elf, "rb") as f:
        symbols = {s.name: s for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()}
    header = (resnet8_outdir / "c" / "model.h").read_text()
    arena = int(header.split("#define STQ_ARENA_BYTES ")[1].split("u")[0])
    assert symbols["stq_arena"]["st_size"] == arena
    conv = [s for n, s in symbols.items() if n.startswith("stq_w_") and "b1_conv1" in n]
    assert conv and conv[0]["st_size"] == 16 * 3 * 3 * 16 // 4  # 2-bit packed ternary weights
