"""`stq experiment`'s device stages on a board farm: validation and the adversarial replay of
one model on two QEMU boards give the files of the plain one-board run; black-box queries on
the device (--device-queries) give those of a one-board farm; the farm report reaches the
experiment report. Stage level (the whole experiment, five models trained, is
tests/test_experiment.py); real QEMU netduinoplus2 boards, real ART attacks."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from toolchain.errors import StqError

BOARD = "netduinoplus2"
VOLATILE = {"seconds", "farm", "device", "attack_oracle"}  # timings; where it ran


@pytest.fixture(scope="module")
def elf(digits_outdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm")
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build

    return build(digits_outdir, load_board(BOARD), tmp_path_factory.mktemp("fw")).elf


@pytest.fixture
def both_boards_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every farm of the experiment's stages: a device that finished an item waits (at most
    2 min) until every device has finished one, so a board that booted first cannot do the
    whole (small) stage alone and the test really shards."""
    from toolchain.pipeline import experiment_attack

    original = experiment_attack.device_farm

    def device_farm(*args: Any) -> Any:
        spec = original(*args)
        if spec is not None:
            n, done, cond = len(spec.devices()), set(), threading.Condition()

            def hook(dev: Any, item: Any) -> None:
                with cond:
                    done.add(dev.name)
                    cond.notify_all()
                    cond.wait_for(lambda: len(done) >= n, timeout=120)

            spec.on_item = hook
        return spec

    monkeypatch.setattr(experiment_attack, "device_farm", device_farm)


def stable(res: dict) -> dict:
    """An attack result without timings and device names (every score, output and count)."""
    rows = [{k: v for k, v in r.items() if k not in ("seconds", "oracle")} for r in res["rows"]]
    return {**{k: v for k, v in res.items() if k not in VOLATILE | {"rows"}}, "rows": rows}


def chunks(out: Path) -> list[dict]:
    """OUT/chunks.jsonl without the attacks' timing."""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "chunks.jsonl").read_text().splitlines()]


def attack(cfg: Any, acfg: Any, h5: Path, artifact: Path, elf: Path, out: Path) -> dict:
    from toolchain.pipeline.experiment_attack import attack_model

    return attack_model(h5, artifact, acfg, "digits", out, cfg.board, elf, "stq",
                        lambda m: None, cfg)


def used_both(farm: dict) -> bool:
    return sorted(r["name"] for r in farm["devices"] if r["items"] and not r["failed"]) == [
        "qemu0", "qemu1"]


@pytest.mark.slow
def test_experiment_device_stages_on_two_boards_equal_one_board(
        digits_h5: Path, digits_outdir: Path, elf: Path, both_boards_work: None,
        tmp_path: Path) -> None:
    from toolchain.pipeline.experiment import ExperimentConfig
    from toolchain.pipeline.experiment_attack import validate_models
    from toolchain.pipeline.experiment_report import farm_lines
    from toolchain.robustness.registry import for_dataset
    from toolchain.training import datasets
    from toolchain.validate.run import RESULTS

    ds = datasets.load("digits")
    one_cfg = ExperimentConfig(out=tmp_path, board=BOARD, validate_limit=16)
    two_cfg = replace(one_cfg, qemu=2, block=4)
    acfg = for_dataset("digits", budget="quick", attacks=("fgsm", "square"), eps=(0.1,),
                       limit=4, chunk=4, square_iter=10, seed=1, convergence=False,
                       sanity=False)
    v1, v2 = (validate_models(c, ds, {"stq": digits_outdir}, {"elf": {"stq": str(elf)}},
                              tmp_path / w / "validate")["stq"]
              for c, w in ((one_cfg, "one"), (two_cfg, "two")))
    a1, a2 = (attack(c, acfg, digits_h5, digits_outdir, elf, tmp_path / w / "attacks")
              for c, w in ((one_cfg, "one"), (two_cfg, "two")))

    # validation: the same results.jsonl, line for line (instruction counts included)
    f1 = (tmp_path / "one" / "validate" / "stq" / RESULTS).read_text().splitlines()
    f2 = (tmp_path / "two" / "validate" / "stq" / RESULTS).read_text().splitlines()
    assert f1 == f2 and len(f1) == 16
    assert len({tuple(json.loads(line)["y"]) for line in f1}) > 8  # outputs vary
    assert {k: v for k, v in v2.items() if k != "farm"} == v1 and v1["bit_exact"] == 16
    assert "farm" not in v1 and used_both(v2["farm"])
    assert sum(r["items"] for r in v2["farm"]["devices"]) == 4  # 16 inputs in blocks of 4

    # adversarial replay: the host's chunks reused, the same scores on the device
    c1, c2 = (chunks(tmp_path / w / "attacks" / "device") for w in ("one", "two"))
    assert c1 == c2 and len(c1) == 2  # the same adversarial bytes and queries
    assert stable(a1) == stable(a2) and a2["host_device_mismatches"] == 0
    sq = next(r for r in a1["rows"] if r["attack"] == "square")
    assert sq["queries"] > 0 and sq["host_device_equal"]
    assert a2["farm"]["queries"] >= 4 * 3 and used_both(a2["farm"])  # clean + 2 attacks
    assert "farm of 2 devices" in a2["attack_oracle"]

    # the experiment report shows both stages' per-device tables
    md = "\n".join(farm_lines({"validate": {"stq": v2}, "attacks": {"results": {"stq": a2}}}))
    assert "### validation of stq: 2 of 2 devices" in md
    assert "### adversarial replay of stq" in md and "| qemu1 | local |" in md
    assert farm_lines({"validate": {"stq": v1}, "attacks": {"results": {"stq": a1}}}) == []


@pytest.mark.slow
@pytest.mark.long  # ~20 s more QEMU boards and device queries: outside `make test`'s budget
def test_experiment_device_queries_on_two_boards_equal_one_board(
        digits_h5: Path, digits_outdir: Path, elf: Path, both_boards_work: None,
        tmp_path: Path) -> None:
    """--device-queries: Square queries the boards, one image per work item; two boards give
    a one-board farm's adversarial bytes, queries and scores."""
    from toolchain.pipeline.experiment import ExperimentConfig
    from toolchain.robustness.registry import for_dataset

    cfg = ExperimentConfig(out=tmp_path, board=BOARD, device_queries=True, qemu=1)
    acfg = for_dataset("digits", budget="quick", attacks=("square",), eps=(0.1,), limit=4,
                       chunk=4, square_iter=8, seed=2, convergence=False, sanity=False)
    a1, a2 = (attack(c, acfg, digits_h5, digits_outdir, elf, tmp_path / w)
              for c, w in ((cfg, "one"), (replace(cfg, qemu=2), "two")))
    c1, c2 = (chunks(tmp_path / w / "device-queries") for w in ("one", "two"))
    assert c1 == c2 and c1[0]["queries"] > 4  # same adversarial bytes, same device queries
    assert stable(a1) == stable(a2) and a2["host_device_mismatches"] == 0
    assert used_both(a2["farm"]) and a2["attack_oracle"].startswith("black-box queries on farm")
    assert not (tmp_path / "one" / "host").exists()  # nothing was attacked on the host


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
