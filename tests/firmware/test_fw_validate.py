"""`stq validate` on QEMU netduinoplus2: 100 digits test images through the framed protocol,
every output bit-exact with the host reference, the QKeras comparison and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BOARD = "netduinoplus2"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_validate_100_digits_on_qemu(fw_build, fw_model_outdir: Path, digits_h5: Path,
                                     tmp_path: Path, stq_cmd, capsys) -> None:
    out = ARTIFACTS / "validate-qemu"
    argv = ["--board", BOARD, "--artifact", str(fw_model_outdir), "--dataset", "digits",
            "--limit", "100", "--elf", str(fw_build(BOARD).elf), "--model", str(digits_h5),
            "--restart", "--no-progress", "-o", str(out)]
    assert stq_cmd("validate", argv) == 0, capsys.readouterr().err
    assert "validate: 100/100 bit-exact" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["validated"] == 100 and s["bit_exact"] == 100 and s["mismatches"] == 0
    assert s["top1_agreement"] == 1.0 and s["device_accuracy"] > 0.9
    assert s["keras"]["keras_top1_agreement"] > 0.95 and s["keras"]["cosine"] > 0.99
    assert s["session"]["board"] == BOARD and s["mean_instructions"] > 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["i"] for r in rows] == list(range(100)) and all(r["exact"] for r in rows)
    assert "100/100" in (out / "summary.md").read_text()
    assert "PASS" in (out / "summary.html").read_text()
    # a second run finds everything done: nothing re-run, same results
    before = (out / "results.jsonl").read_bytes()
    argv.remove("--restart")
    assert stq_cmd("validate", argv) == 0
    assert (out / "results.jsonl").read_bytes() == before
    assert json.loads((out / "summary.json").read_text())["session"]["resumed_at"] == 100
