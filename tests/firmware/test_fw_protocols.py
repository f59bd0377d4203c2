"""`stq build --protocols`: a product firmware carrying only the framed (binary) protocol is
smaller in flash and RAM than the full one (no text/MLPerf code, no input copy, a 256 B receive
ring, a 2 KB stack), reports its ring in INFO so the host's window follows, and passes a QEMU
`stq validate` run bit-exact; `stq budget --elf` books the smaller stack; an unknown protocol
(or an MLPerf option without the MLPerf protocol) is one clear error and builds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolchain.budget.elf import ElfImage
from toolchain.device.connect import connect
from toolchain.firmware.project import BINARY_ONLY_RX_RING, BINARY_ONLY_STACK

BOARD = "netduinoplus2"


@pytest.mark.slow
def test_binary_only_firmware_is_smaller_and_validates_bit_exact(
        fw_build, fw_model_outdir: Path, tmp_path: Path, stq_cmd, capsys) -> None:
    build_dir = tmp_path / "product"
    argv = [str(fw_model_outdir), "--board", BOARD, "-o", str(build_dir), "--protocols",
            "binary", "--json"]
    assert stq_cmd("build", argv) == 0, capsys.readouterr().err
    built = json.loads(capsys.readouterr().out)
    assert built["protocols"] == ["binary"]
    full = fw_build(BOARD)
    assert full.protocols == ("binary", "text", "mlperf")
    product = {k: v["used"] for k, v in built["usage"].items()}
    # no text/MLPerf code; RAM: no MLPerf line or input copy, 768 B of ring, 6 KB of stack
    assert product["FLASH"] < full.usage["FLASH"][0] - 4000
    assert product["RAM"] < full.usage["RAM"][0] - 7500
    elf = Path(built["elf"])
    funcs = ElfImage(elf).functions
    assert "stq_frame_feed" in funcs and "stq_hello" in funcs
    assert "stq_mlperf_feed" not in funcs and "stq_text_feed" not in funcs

    out = tmp_path / "validate"
    assert stq_cmd("validate", ["--board", BOARD, "--artifact", str(fw_model_outdir),
                                "--dataset", "digits", "--limit", "12", "--elf", str(elf),
                                "--no-progress", "-o", str(out)]) == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["validated"] == 12 and s["bit_exact"] == 12 and s["mismatches"] == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len({r["top1"] for r in rows}) > 1 and all(r["exact"] for r in rows)  # outputs vary

    with connect(BOARD, fw_model_outdir, tmp_path, elf=elf) as link:
        info = link.info()
        assert info.rx_window == BINARY_ONLY_RX_RING and info.rx_dropped == 0

    capsys.readouterr()
    assert stq_cmd("budget", [str(fw_model_outdir), "--elf", str(elf), "--json"]) == 0
    e = json.loads(capsys.readouterr().out)["elf"]
    assert e["stack_bytes"] == BINARY_ONLY_STACK
    assert e["usage"]["RAM"][0] == product["RAM"] and e["usage"]["FLASH"][0] == product["FLASH"]


@pytest.mark.parametrize("argv, needle", [
    (["--protocols", "binary,usb"], "--protocols: unknown protocol 'usb' (choose one or more "
     "of binary, text, mlperf"),
    (["--protocols", ","], "--protocols: unknown protocol ''"),
    (["--protocols", "binary", "--mlperf-model", "ic01"],
     "--mlperf-model needs the mlperf protocol, but --protocols is binary"),
])
def test_bad_protocols_are_one_clear_error(fw_model_outdir: Path, tmp_path: Path, stq_cmd,
                                           capsys, argv: list[str], needle: str) -> None:
    build_dir = tmp_path / "b"
    rc = stq_cmd("build", [str(fw_model_outdir), "--board", BOARD, "-o", str(build_dir), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not build_dir.exists()
