"""`stq budget`: the analytic prediction equals the linked ELF exactly (weights, requantization
parameters, arena) on two models and two boards; over budget and over a board both fail with a
message; a model that fits passes; the HTML report renders in headless Chromium; bad input
gives one clear error."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from chromium import render
from nm_sizes import nm_sizes

from toolchain.budget.analysis import analyze, analyze_outdir, load_graph, parse_size
from toolchain.budget.elf import ElfImage, reconcile
from toolchain.errors import StqError
from toolchain.firmware import boards
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import BuildResult, build

BOARDS = ("netduinoplus2", "nucleo-u575zi-q")


@pytest.fixture(scope="module")
def resnet8_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolchain.frontend.keras import convert_model
    from toolchain.pipeline.convert import convert_graph
    from toolchain.training import zoo

    out = tmp_path_factory.mktemp("budget-resnet8")
    convert_graph(convert_model(zoo.resnet8("stq"), name="resnet8"), out)
    return out


@pytest.fixture(scope="module")
def builds(digits_outdir: Path, resnet8_outdir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], BuildResult]:
    root = tmp_path_factory.mktemp("budget-builds")
    dirs = {"digits": digits_outdir, "resnet8": resnet8_outdir}
    cache: dict[tuple[str, str], BuildResult] = {}

    def get(model: str, board: str) -> BuildResult:
        if (model, board) not in cache:
            cache[model, board] = build(dirs[model], load_board(board), root / f"{model}-{board}")
        return cache[model, board]

    return get




def stq(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`stq budget ARGV`, run as the console script runs it."""
    from toolchain.cli.main import main

    rc = main(["budget", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("model", ["digits", "resnet8"])
def test_prediction_equals_the_elf(model: str, board: str, builds, digits_outdir: Path,
                                   resnet8_outdir: Path) -> None:
    outdir = {"digits": digits_outdir, "resnet8": resnet8_outdir}[model]
    result = builds(model, board)
    b = analyze_outdir(outdir)
    summary = reconcile(b, ElfImage(result.elf), load_board(board), result.map)
    with open(result.elf, "rb") as f:
        from elftools.elf.elffile import ELFFile

        syms = {s.name: s["st_size"] for s in ELFFile(f).get_section_by_name(".symtab")
                .iter_symbols() if s.name.startswith(("stq_w_", "stq_q_", "stq_arena"))}
    assert syms == b.symbols  # every weight, parameter and the arena: exact, nothing extra
    header = (outdir / "c" / "model.h").read_text()
    assert f"#define STQ_ARENA_BYTES {b.arena_bytes}u" in header
    assert sum(v for k, v in b.symbols.items() if k.startswith("stq_w_")) == b.weights_bytes
    assert b.arena_optimal and b.arena_bytes == b.arena_lower_bound <= b.arena_greedy
    assert summary["usage"] == result.usage  # same totals as `size -A`
    assert summary["kernel_code"] > 0 and summary["runtime_flash"] > 0
    assert summary["stack_bytes"] == load_board(board).stack_bytes
    if model == "resnet8":
        assert b.int8_bytes == 78_744 and b.packing_bytes("base3") < b.weights_bytes


@pytest.mark.parametrize("model", ["digits", "resnet8"])
def test_model_footprint_is_the_sum_of_its_symbols(model: str, builds, digits_outdir: Path,
                                                   resnet8_outdir: Path) -> None:
    """Every symbol the model's C defines is booked to the model (tables and helpers its
    kernels pull in included), and the footprint is exactly their sizes in the ELF."""
    from toolchain.budget.elf import model_symbol_sizes

    outdir = {"digits": digits_outdir, "resnet8": resnet8_outdir}[model]
    result = builds(model, "netduinoplus2")
    b = analyze_outdir(outdir)
    elf = ElfImage(result.elf)
    reconcile(b, elf, load_board("netduinoplus2"), result.map)
    objects = sorted((result.build_dir / "obj" / "model").glob("*.o"))
    in_objects = nm_sizes(*objects)
    booked = model_symbol_sizes(b, elf)
    in_elf = nm_sizes(result.elf)
    kept = {n for n, v in in_objects.items() if v and n in in_elf}  # what the linker kept
    assert kept == set(booked)
    ram = {f"{b.prefix}arena", f"{b.prefix}hook", f"{b.prefix}scratch"}
    flash = {n: v for n, v in booked.items() if n not in ram}
    assert flash == {n: in_elf[n] for n in flash}
    assert sum(flash.values()) == b.model_flash
    assert sum(in_elf.get(n, 0) for n in ram) == b.elf["model_ram"]
    tables = b.elf["tables"]
    if model == "resnet8":  # the optimized ternary convs pull in the 2 KB mask table
        assert tables[f"{b.prefix}t2_masks"] == 2048
    per_object = b.elf["map"]["per_object"]
    placed = sum(size for name, (_, size) in elf.sections.items() if name != ".stack")
    # what the linker placed from object files, and nothing else (no debug sections): all of
    # the allocated sections but the stack, less a little alignment fill
    assert 0.97 * placed <= sum(per_object.values()) <= placed


def test_a_model_that_fits_passes_and_writes_reports(builds, digits_outdir: Path,
                                                     tmp_path: Path, capsys) -> None:
    elf = builds("digits", "netduinoplus2").elf
    rc, out, err = stq([str(digits_outdir), "--elf", str(elf), "-o", str(tmp_path)], capsys)
    assert rc == 0, err
    assert "conv2" in out and "ok" in out and "match the prediction exactly" in out
    report = json.loads((tmp_path / "budget.json").read_text())
    assert report["ok"] and report["board"] == "netduinoplus2"
    assert report["budget_bytes"] == 410_000 and report["elf"]["usage"]["FLASH"][0] > 0
    assert "| conv2 |" in (tmp_path / "budget.md").read_text()
    rc, out, _ = stq([str(digits_outdir / "model.stqa"), "--json"], capsys)
    assert rc == 0 and json.loads(out)["ram"]["arena"] == report["ram"]["arena"]


def test_over_budget_fails_naming_contributors(resnet8_outdir: Path, capsys) -> None:
    rc, out, err = stq([str(resnet8_outdir), "--budget", "50KiB"], capsys)
    assert rc == 1
    assert "OVER by" in out and "51,200" in out
    assert "stq budget: over:" in err and "b3_conv2" in err
    # the ternary layers' 2-bit minus base-3 bytes (int8 layers keep their emitted rows)
    assert "base-3 packing (stq convert --packing base3) saves 3,648 B" in out


def test_over_board_limit_fails_and_names_boards_that_fit(resnet8_outdir: Path, tmp_path: Path,
                                                          monkeypatch, capsys) -> None:
    src = boards.BOARDS_DIR / "netduinoplus2.toml"
    for name, ram in (("tiny", "0x8000"), ("netduinoplus2", None)):
        text = src.read_text().replace('name = "netduinoplus2"', f'name = "{name}"')
        if ram:
            text = text.replace("length = 0x20000", f"length = {ram}")  # 128 KB RAM -> 32 KB
        (tmp_path / f"{name}.toml").write_text(text)
    monkeypatch.setattr(boards, "BOARDS_DIR", tmp_path)
    assert load_board("tiny").ram.length == 0x8000
    rc, out, err = stq([str(resnet8_outdir), "--board", "tiny"], capsys)
    assert rc == 1
    assert "tiny RAM" in out and "OVER by" in out and "stq budget: over: tiny RAM" in err
    assert "boards it fits: netduinoplus2" in out


def test_html_report_renders_in_headless_chromium(builds, resnet8_outdir: Path,
                                                  tmp_path: Path, capsys) -> None:
    elf = builds("resnet8", "nucleo-u575zi-q").elf
    rc, _, err = stq([str(resnet8_outdir), "--elf", str(elf), "-o", str(tmp_path)], capsys)
    assert rc == 0, err
    r = render(tmp_path / "budget.html", tmp_path / "profile", "budget/resnet8_budget.png")
    assert '<table id="layers">' in r.dom and "b3_conv2" in r.dom
    assert '<img id="chart"' in r.dom and "data:image/png;base64," in r.dom
    assert not r.console_errors, r.console_errors


def test_parse_size() -> None:
    assert parse_size("410KB") == 410_000
    assert parse_size("410KiB") == 419_840
    assert parse_size("0.5MB") == 500_000
    assert parse_size("1024") == 1024
    assert parse_size("2 MiB") == 2 * 1024 * 1024
    for bad in ("", "KB", "41x", "-5KB", "1.5", "0.1B", "10 K B"):
        with pytest.raises(StqError, match="--budget"):
            parse_size(bad)


def test_bad_input_gives_one_clear_error(builds, digits_outdir: Path, tmp_path: Path,
                                         capsys) -> None:
    rc, _, err = stq([str(digits_outdir), "--board", "nope"], capsys)
    assert rc == 2 and "unknown board 'nope'; known boards: netduinoplus2" in err
    rc, _, err = stq([str(digits_outdir), "--budget", "lots"], capsys)
    assert rc == 2 and "--budget 'lots' is not a size" in err
    rc, _, err = stq([str(tmp_path / "missing")], capsys)
    assert rc == 2 and "does not exist" in err
    other = builds("resnet8", "netduinoplus2").elf
    rc, _, err = stq([str(digits_outdir), "--elf", str(other)], capsys)
    assert rc == 2 and "was built from model hash" in err and "rebuild it" in err
    elf = builds("digits", "netduinoplus2").elf
    rc, _, err = stq([str(digits_outdir), "--elf", str(elf), "--board", "nucleo-u575zi-q"],
                     capsys)
    assert rc == 2 and "was built for board netduinoplus2" in err
    stripped = tmp_path / "stripped.elf"
    subprocess.run(["arm-none-eabi-strip", "-o", str(stripped), str(elf)], check=True)
    rc, _, err = stq([str(digits_outdir), "--elf", str(stripped)], capsys)
    assert rc == 2 and "no symbol table" in err
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"not an elf at all")
    rc, _, err = stq([str(digits_outdir), "--elf", str(junk), "--board", "netduinoplus2"],
                     capsys)
    assert rc == 2 and "is not an ELF file" in err
    b = analyze(load_graph(digits_outdir))
    b.symbols["stq_w_9_missing"] = 16
    with pytest.raises(StqError, match="has no symbol stq_w_9_missing"):
        reconcile(b, ElfImage(elf), load_board("netduinoplus2"))
    b = analyze(load_graph(digits_outdir))
    b.symbols["stq_arena"] += 8
    with pytest.raises(StqError, match="symbol stq_arena is"):
        reconcile(b, ElfImage(elf), load_board("netduinoplus2"))
