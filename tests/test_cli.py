"""The `stq` command line: --help everywhere, convert and reference end to end, the demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli.main import commands, main

STQ = str(Path(sys.executable).with_name("stq"))


@pytest.mark.parametrize("command", [""] + [c.name for c in commands()])
def test_help_everywhere(command: str) -> None:
    args = [STQ] + ([command] if command else []) + ["--help"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: stq" in proc.stdout


def test_convert_writes_artifact_c_and_summary(digits_h5: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model"
    assert main(["convert", str(digits_h5), "-o", str(out), "--packing", "base3",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in (out / "c").iterdir()) == [
        "kernels.c", "kernels.h", "model.c", "model.h", "weights.c"]
    assert (out / "model.stqa").is_file()
    assert json.loads((out / "convert.json").read_text()) == summary
    assert summary["packing"] == "base3" and summary["macs"] == 84_224
    header = (out / "c" / "model.h").read_text()
    assert f'#define STQ_MODEL_HASH "{summary["hash"]}"' in header
    assert "#define STQ_INPUT_BYTES 64u" in header
    # the ternary base-3 layer runs the optimized kernel (rows decoded to 2-bit), the int8 dense
    # layer the reference loop, and the text summary says so instead of "optimized kernels"
    assert "stq_t3_to_t2(" in (out / "c" / "kernels.c").read_text()
    assert [x["optimized"] for x in summary["layers"] if x["op"] == "conv2d"] == [True, True]
    # converting again gives the same hash (deterministic) and replaces the sources
    assert main(["convert", str(digits_h5), "-o", str(out), "--packing", "base3"]) == 0
    text = capsys.readouterr().out
    n_opt = sum(x["optimized"] for x in summary["layers"])
    assert f"optimized kernels on {n_opt} of {len(summary['layers'])} layers, reference on" in text
    assert json.loads((out / "convert.json").read_text())["hash"] == summary["hash"]


def test_reference_command(digits_outdir: Path, digits_graph, digits_data, tmp_path: Path,
                           capsys) -> None:
    from toolchain.reference import model as reference

    xq = reference.quantize_input(digits_graph, digits_data.x_test[:5])
    np.save(tmp_path / "x.npy", xq)
    assert main(["reference", str(digits_outdir), "--inputs", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "y.npy"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, reference.predict(digits_graph, xq))
    assert printed["top1"] == y.argmax(1).tolist()
    np.save(tmp_path / "bad.npy", xq.astype(np.float32))
    assert main(["reference", str(digits_outdir), "--inputs", str(tmp_path / "bad.npy")]) == 2
    assert "expects integer uint8" in capsys.readouterr().err
