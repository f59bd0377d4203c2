"""Adversarial evaluation on digits: the attacks really attack (FP model), every attack runs on
the STQ model with the virtual board as the black-box oracle and the device agrees with the
host reference on every adversarial input, transfer from the FP model, query budgets stop
attacks, runs resume, the gradient-masking flag fires on a zero-gradient model and not on the
FP model, and the HTML report renders in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from chromium import render

from toolchain.robustness import attacks as A
from toolchain.robustness import evaluate as attacks_eval
from toolchain.robustness import oracles

SMALL = {"cw_iter": 5, "square_iter": 40, "boundary_iter": 15, "hsj_iter": 2,
         "hsj_max_eval": 50, "zoo_iter": 5, "zoo_parallel": 32, "pgd_iter": 10}


def quiet(_: str) -> None:
    pass


@pytest.fixture
def stq_cmd():
    from toolchain.cli.main import main

    return lambda name, argv: main([name, *argv])


@pytest.fixture(scope="module")
def fp_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolchain.training.train import TrainConfig, train

    r = train(TrainConfig(model="digits", variant="fp"), tmp_path_factory.mktemp("fp"),
              progress=False)
    return Path(r.model_path)


@pytest.fixture(scope="module")
def fp_result(fp_h5: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = A.for_dataset("digits", attacks=("fgsm", "pgd", "square"), eps=(0.05, 0.1, 0.2),
                        limit=20, **SMALL)
    return attacks_eval.evaluate(fp_h5, None, cfg, "digits", tmp_path_factory.mktemp("fpa"),
                                 log=quiet)


@pytest.fixture(scope="module")
def stq_result(digits_h5: Path, digits_outdir: Path, fp_h5: Path,
               tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = A.for_dataset("digits", attacks=A.ATTACKS, eps=(0.1, 0.3), limit=6, **SMALL)
    return attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits",
                                 tmp_path_factory.mktemp("stqa"), board="virtual",
                                 transfer_from=(fp_h5,), log=quiet)


def acc(res: dict, attack: str, eps: float) -> float:
    return next(r["acc"]["host"] for r in res["rows"] if r["attack"] == attack
                and r["eps"] == eps)


def test_pgd_attacks_the_fp_model(fp_result: dict) -> None:
    clean = fp_result["clean"]["host"]
    assert clean >= 0.9
    assert acc(fp_result, "pgd", 0.1) <= clean - 0.4
    seq = [acc(fp_result, "pgd", e) for e in (0.05, 0.1, 0.2)]
    assert seq == sorted(seq, reverse=True), seq
    assert acc(fp_result, "pgd", 0.2) <= acc(fp_result, "fgsm", 0.2)
    assert not fp_result["masking"]["flagged"], fp_result["masking"]


def test_every_attack_on_stq_host_and_virtual_board(stq_result: dict) -> None:
    res = stq_result
    assert res["device"] == "board virtual" and res["attack_oracle"] == "board virtual"
    assert res["host_device_mismatches"] == 0
    assert res["clean"]["host_device_equal"] is True
    assert all(r["host_device_equal"] is True for r in res["rows"])
    names = {r["attack"] for r in res["rows"]}
    assert names == {*A.ATTACKS, "transfer-fp-fgsm", "transfer-fp-pgd"}
    for r in res["rows"]:
        assert r["acc"]["device"] == r["acc"]["host"]
        if r["kind"] == "black-box":
            assert r["queries"] > 0 and not r["budget_exhausted"]
    # every minimum-norm attack breaks the model when unbounded; PGD at 0.3 does too
    for name in ("boundary", "hsj", "zoo"):
        assert acc(res, name, None) <= 0.5, name
    assert acc(res, "pgd", 0.3) <= 0.2


def test_same_attack_same_queries_on_reference_and_host_c(digits_outdir: Path, digits_graph,
                                                          digits_data, tmp_path: Path) -> None:
    """Bit-exact oracles give identical attack trajectories: same queries, same adversarials."""
    cfg = A.for_dataset("digits", square_iter=30)
    x, y = digits_data.x_test[:4], digits_data.y_test[:4]
    runs = []
    for o in (oracles.ReferenceOracle(digits_graph),
              oracles.HostCOracle(digits_graph, digits_outdir / "c", tmp_path)):
        c = oracles.CountedOracle(o, log=tmp_path / f"{o.name}.jsonl")
        adv = A.black_box("square", oracles.art_classifier(c), x, y, cfg, eps=0.2)
        c.close()
        log = [json.loads(ln) for ln in (tmp_path / f"{o.name}.jsonl").read_text().splitlines()]
        runs.append((c.queries, adv, [{**r, "seconds": 0} for r in log]))
    assert runs[0][0] == runs[1][0] > 0
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]  # the query logs too (inputs digests, top-1)


def test_query_budget_stops_and_a_run_resumes(digits_h5: Path, digits_outdir: Path,
                                              tmp_path: Path) -> None:
    cfg = A.for_dataset("digits", attacks=("square",), eps=(0.2,), limit=6, chunk=2,
                        budget=60, square_iter=50)
    lines: list[str] = []
    res = attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits", tmp_path,
                                log=lines.append)
    (row,) = res["rows"]
    assert row["budget_exhausted"] and 0 < row["queries"] <= 60 and row["attacked"] < 6
    assert any("stopped at the query budget (60)" in ln for ln in lines)
    log = [json.loads(ln) for ln in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "budget_exhausted" and log[-1]["budget"] <= 60
    assert sum(r["n"] for r in log if r["event"] == "query") == row["queries"]
    # a rerun finds every chunk done: no new query, the same result
    again = attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits", tmp_path,
                                  log=lines.append)
    assert any("resuming: 3 finished chunks" in ln for ln in lines)
    assert again["rows"] == res["rows"]
    assert len((tmp_path / "queries.jsonl").read_text().splitlines()) == len(log)


def test_masking_flag_fires_on_zero_gradients(fp_h5: Path, tmp_path: Path) -> None:
    """Hard-rounded inputs with no straight-through gradient: white-box attacks see a zero
    gradient and do nothing, the black-box Square attack does not care."""
    import tensorflow as tf

    from toolchain.frontend.keras import load_keras_model

    fp = load_keras_model(fp_h5)
    inp = tf.keras.Input(fp.input_shape[1:])
    hard = tf.keras.layers.Lambda(lambda x: tf.stop_gradient(tf.round(x * 2) / 2) + 0.0 * x)
    masked = tf.keras.Model(inp, fp(hard(inp)))
    cfg = A.for_dataset("digits", attacks=("fgsm", "pgd", "square"), eps=(0.2, 0.3), limit=20,
                        pgd_iter=10, square_iter=60)
    res = attacks_eval.evaluate(fp_h5, None, cfg, "digits", tmp_path, log=quiet,
                                keras_model=masked, label="masked")
    assert acc(res, "pgd", 0.3) == res["clean"]["host"]  # no gradient, no attack
    assert res["masking"]["flagged"], res
    assert any("black-box square" in r for r in res["masking"]["reasons"])


def test_report_merges_models_and_renders(fp_result: dict, stq_result: dict, tmp_path: Path,
                                          stq_cmd, capsys) -> None:
    dirs = []
    for res in (stq_result, fp_result):
        d = tmp_path / res["model"]
        d.mkdir()
        (d / "results.json").write_text(json.dumps(res))
        dirs.append(str(d))
    out = tmp_path / "report"
    assert stq_cmd("report", [*dirs, "-o", str(out)]) == 0
    md = (out / "robustness.md").read_text()
    for name in A.DEFAULT_ATTACKS:
        assert f"| {name} |" in md, name
    assert "| attack | eps | fp | stq |" in md and "equal" in md and "DIFFERENT" not in md
    data = json.loads((out / "robustness.json").read_text())
    assert data["models"] == ["fp", "stq"] and set(A.DEFAULT_ATTACKS) <= set(data["attacks"])
    r = render(out / "robustness.html", tmp_path / "profile", "attacks/robustness.png")
    assert '<table id="accuracy">' in r.dom and "transfer-fp-pgd" in r.dom
    assert '<img id="chart"' in r.dom and "data:image/png;base64," in r.dom
    assert not r.console_errors, r.console_errors


def test_attack_cli_errors(digits_h5: Path, tmp_path: Path, stq_cmd, capsys) -> None:
    assert stq_cmd("attack", ["--model", str(digits_h5), "--attacks", "fgsm,nope",
                              "-o", str(tmp_path)]) == 2
    assert "unknown attack(s) nope" in capsys.readouterr().err
    assert stq_cmd("attack", ["--model", str(digits_h5), "--board", "virtual",
                              "-o", str(tmp_path)]) == 2
    assert "--board/--port need --artifact" in capsys.readouterr().err
    assert stq_cmd("report", [str(tmp_path / "none"), "-o", str(tmp_path)]) == 2
    assert "results.json not found" in capsys.readouterr().err
