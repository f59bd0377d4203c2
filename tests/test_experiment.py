"""`stq experiment` end to end on DS-CNN with a small generated Speech-Commands folder: every
variant trained, deployed, validated on QEMU, attacked on host and device; one report."""

from __future__ import annotations

import json
import shutil

import pytest
from dataset_files import speech_commands_dir

from toolchain.cli.main import main


@pytest.mark.slow
def test_experiment_dscnn_speech_commands(tmp_path, capsys):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    data = speech_commands_dir(tmp_path / "sc", per_word=2)
    out = tmp_path / "exp"
    argv = ["experiment", "-o", str(out), "--model", "dscnn", "--dataset", "speech_commands",
            "--data-dir", str(data), "--epochs", "1", "--validate-limit", "3",
            "--attack-limit", "2", "--jr-candidates", "2", "--budget", "quick"]
    assert main(argv) == 0
    s = json.loads((out / "report" / "report.json").read_text())
    res = s["attacks"]["results"]
    assert set(res) == {"fp", "int8", "stq", "stq-jr", "quanos", "ensemble"}
    for name, r in res.items():  # the ensemble too: attacked as one model
        assert not r.get("error"), (name, r.get("error"))
        assert r["host_device_mismatches"] == 0, name
        assert r["n"] == 2
        assert {row["attack"] for row in r["rows"]} >= {"fgsm", "pgd", "cw", "boundary", "zoo"}
        assert (r["clean"]["device"] is None) == (name == "fp"), name  # fp is never deployed
        assert r["masking"]["checks"], name
    assert all(v["bit_exact"] == v["validated"] == 3 for v in s["validate"].values())
    tm = s["transfer"]  # every model, the ensemble included, as source and as target
    assert tm["models"] == ["fp", "int8", "stq", "stq-jr", "quanos", "ensemble"]
    assert len(tm["acc"][0]) == 6 and all(len(row) == 6 for row in tm["acc"][0])
    md = (out / "report" / "report.md").read_text()
    assert "stq experiment" in md and "subset" in md.lower() and "STQ+JR" in md
    for section in ("## Transfer matrix", "## Gradient-masking checks", "## L2 attacks",
                    "## Attack budgets", "| ensemble (n=2) |"):
        assert section in md, section
    assert (out / "report" / "transfer.png").stat().st_size > 1000
    assert (out / "report" / "eps.png").stat().st_size > 1000
    # a second run reuses every stage
    capsys.readouterr()
    assert main(argv) == 0
    assert "reused" in capsys.readouterr().err
