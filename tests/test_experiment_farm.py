"""`stq experiment`'s device stages on a board farm: validation and the adversarial replay of
one model on two QEMU boards give the files of the plain one-board run, and the farm report
reaches the experiment report. Stage level (the whole experiment trains five models: the
`long` tier's tests/test_experiment.py); real QEMU netduinoplus2 boards, real ART attacks."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from toolchain.errors import StqError

BOARD = "netduinoplus2"
VOLATILE = {"seconds", "farm", "device", "attack_oracle"}  # timings; where it ran


def stable(res: dict) -> dict:
    """An attack result without timings and device names (every score, output and count)."""
    rows = [{k: v for k, v in r.items() if k not in ("seconds", "oracle")} for r in res["rows"]]
    return {**{k: v for k, v in res.items() if k not in VOLATILE | {"rows"}}, "rows": rows}


def chunks(out: Path) -> list[dict]:
    """OUT/chunks.jsonl without the host attack's timing (each run attacks on the host)."""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "chunks.jsonl").read_text().splitlines()]


def device_stages(cfg: Any, acfg: Any, ds: Any, h5: Path, artifact: Path, elf: Path,
                  out: Path) -> tuple[dict, dict]:
    from toolchain.pipeline.experiment_attack import attack_model, validate_models

    val = validate_models(cfg, ds, {"stq": artifact}, {"elf": {"stq": str(elf)}},
                          out / "validate")
    att = attack_model(h5, artifact, acfg, ds.name, out / "attacks", cfg.board, elf, "stq",
                       lambda m: None, cfg)
    return val["stq"], att


@pytest.mark.slow
def test_experiment_device_stages_on_two_boards_equal_one_board(
        digits_h5: Path, digits_outdir: Path, tmp_path: Path) -> None:
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build
    from toolchain.pipeline.experiment import ExperimentConfig
    from toolchain.pipeline.experiment_report import farm_lines
    from toolchain.robustness.registry import for_dataset
    from toolchain.training import datasets
    from toolchain.validate.run import RESULTS

    elf = build(digits_outdir, load_board(BOARD), tmp_path / "fw").elf
    ds = datasets.load("digits")
    one_cfg = ExperimentConfig(out=tmp_path, board=BOARD, validate_limit=16)
    acfg = for_dataset("digits", budget="quick", attacks=("fgsm", "square"), eps=(0.1,),
                       limit=4, chunk=4, square_iter=10, seed=1, convergence=False,
                       sanity=False)
    v1, a1 = device_stages(one_cfg, acfg, ds, digits_h5, digits_outdir, elf, tmp_path / "one")
    v2, a2 = device_stages(replace(one_cfg, qemu=2, block=4), acfg, ds, digits_h5,
                           digits_outdir, elf, tmp_path / "two")

    # validation: the same results.jsonl, line for line (instruction counts included)
    f1 = (tmp_path / "one" / "validate" / "stq" / RESULTS).read_text().splitlines()
    f2 = (tmp_path / "two" / "validate" / "stq" / RESULTS).read_text().splitlines()
    assert f1 == f2 and len(f1) == 16
    assert len({tuple(json.loads(line)["y"]) for line in f1}) > 8  # outputs vary
    assert {k: v for k, v in v2.items() if k != "farm"} == v1 and v1["bit_exact"] == 16
    assert "farm" not in v1
    rows = {r["name"]: r for r in v2["farm"]["devices"]}
    assert sorted(rows) == ["qemu0", "qemu1"] and sum(r["items"] for r in rows.values()) == 4
    assert all(r["items"] >= 1 and not r["failed"] for r in rows.values())

    # adversarial replay: the host's chunks reused, the same scores on the device
    c1, c2 = (chunks(tmp_path / w / "attacks" / "device") for w in ("one", "two"))
    assert c1 == c2 and len(c1) == 2  # the same adversarial bytes and queries
    assert stable(a1) == stable(a2) and a2["host_device_mismatches"] == 0
    sq = next(r for r in a1["rows"] if r["attack"] == "square")
    assert sq["queries"] > 0 and sq["host_device_equal"]
    assert a2["farm"]["queries"] >= 4 * 3  # clean + two attacks' inputs, on the farm
    assert "farm of 2 devices" in a2["attack_oracle"]

    # the experiment report shows both stages' per-device tables
    md = "\n".join(farm_lines({"validate": {"stq": v2}, "attacks": {"results": {"stq": a2}}}))
    assert "### validation of stq: 2 of 2 devices" in md
    assert "### adversarial replay of stq" in md and "| qemu1 | local |" in md
    assert farm_lines({"validate": {"stq": v1}, "attacks": {"results": {"stq": a1}}}) == []


def test_experiment_farm_options_fail_before_anything_is_written(tmp_path: Path, capsys) -> None:
    from toolchain.cli.main import main
    from toolchain.pipeline.experiment import ExperimentConfig
    from toolchain.pipeline.experiment_attack import device_farm

    bad = tmp_path / "devices.txt"
    bad.write_text("a b c\n")
    out = tmp_path / "exp"
    assert main(["experiment", "-o", str(out), "--dataset", "digits", "--devices",
                 str(bad)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "devices.txt:1: expected '[NAME] URL'" in err[0]
    assert not out.exists()
    with pytest.raises(StqError, match="--qemu must be >= 0"):
        device_farm(ExperimentConfig(qemu=-1), tmp_path, None, tmp_path)
    with pytest.raises(StqError, match="--block must be >= 1"):
        device_farm(ExperimentConfig(qemu=2, block=0), tmp_path, None, tmp_path)
    assert device_farm(ExperimentConfig(ports=("socket://h:1",)), tmp_path, None,
                       tmp_path) is None  # one port: the plain one-device path
