"""Adversarial evaluation on digits: the attacks really attack (FP model), every registered
attack runs on the STQ model with the virtual board as the black-box oracle and the device
agrees with the host reference on every adversarial input, L2 attacks are scored at L2 epsilons,
every figure has its n, interval and convergence verdict, query caps stop attacks, runs resume,
the masking checks fire on a zero-gradient model (and BPDA breaks it) and not on the FP model,
the transfer matrix, .npz inputs, bad inputs, and the HTML report renders in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from chromium import render

from toolchain.robustness import evaluate as attacks_eval
from toolchain.robustness import registry as R
from toolchain.robustness.scoring import _worst_case, converged, tolerance, wilson

SMALL = {"cw_iter": 5, "cw_search": 1, "square_iter": 40, "boundary_iter": 15, "hsj_iter": 2,
         "hsj_max_eval": 50, "zoo_iter": 5, "zoo_parallel": 32, "pgd_iter": 10,
         "apgd_iter": 5}


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
    cfg = R.for_dataset("digits", budget="quick",
                        attacks=("fgsm", "pgd", "square", "cw", "apgd-l2"),
                        eps=(0.05, 0.1, 0.2), limit=20, **SMALL)
    return attacks_eval.evaluate(fp_h5, None, cfg, "digits", tmp_path_factory.mktemp("fpa"),
                                 log=quiet)


@pytest.fixture(scope="module")
def stq_result(digits_h5: Path, digits_outdir: Path, fp_h5: Path,
               tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = R.for_dataset("digits", budget="quick", attacks=tuple(R.names()), eps=(0.1, 0.3),
                        limit=6, convergence=False, **SMALL)
    return attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits",
                                 tmp_path_factory.mktemp("stqa"), board="virtual",
                                 transfer_from=(fp_h5,), log=quiet)


def row(res: dict, attack: str, eps: float | None) -> dict:
    return next(r for r in res["rows"] if r["attack"] == attack and r["eps"] == eps)


def acc(res: dict, attack: str, eps: float | None) -> float:
    return row(res, attack, eps)["acc"]["host"]


def check(res: dict, name: str) -> dict:
    return next(c for c in res["masking"]["checks"] if c["check"] == name)


def test_registry_and_budgets() -> None:
    names = R.names()
    assert set(R.DEFAULT_ATTACKS) <= set(names)
    assert {"fgsm", "pgd", "pgd-bpda", "autoattack", "apgd-l2", "cw", "square", "boundary",
            "hsj", "zoo"} == set(names)
    for n in names:
        a = R.get(n)
        assert a.threat in ("white-box", "black-box") and a.norm in ("linf", "l2")
        # the L2 attacks are the minimal ones, except APGD in the L2 ball
        assert a.bounded == (a.norm == "linf" or n == "apgd-l2"), n
    q, s, t = (R.for_dataset("digits", budget=b) for b in ("quick", "standard", "thorough"))
    assert q.pgd_iter < s.pgd_iter < t.pgd_iter and q.square_iter < s.square_iter < t.square_iter
    assert R.describe_budget(s)["pgd"] == f"{s.pgd_iter} steps x {s.pgd_restarts} restarts, " \
                                          "step 2.5 eps/steps"
    assert R.halved(s, "square").square_iter == s.square_iter // 2
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    lo, hi = wilson(5, 10)
    assert lo < 0.5 < hi and hi - lo > 0.5  # n=10 says little


def test_pgd_attacks_the_fp_model(fp_result: dict) -> None:
    clean = fp_result["clean"]["host"]
    assert clean >= 0.9 and fp_result["clean"]["n"] == 20
    assert acc(fp_result, "pgd", 0.1) <= clean - 0.4
    seq = [acc(fp_result, "pgd", e) for e in (0.05, 0.1, 0.2)]
    assert seq == sorted(seq, reverse=True), seq
    assert acc(fp_result, "pgd", 0.2) <= acc(fp_result, "fgsm", 0.2)
    assert acc(fp_result, "pgd", 1.0) == 0.0  # the whole-range sanity run
    for c in fp_result["masking"]["checks"]:
        if c["check"] != "minimal":  # 5 C&W iterations may leave an image
            assert c["status"] in ("ok", "n/a"), c


def test_apgd_l2_is_a_bounded_white_box_l2_attack(fp_result: dict, stq_result: dict) -> None:
    """APGD in the L2 ball runs at each L2 epsilon (not the L-inf ones), really attacks the FP
    model (at least as strong as C&W there), falls with epsilon, stays in its ball on the
    integer model's input grid, and the device agrees with the host on its inputs."""
    rows = [r for r in fp_result["rows"] if r["attack"] == "apgd-l2"]
    assert [r["eps"] for r in rows] == list(fp_result["l2_eps"])
    assert all(r["norm"] == "l2" and r["bounded"] and r["kind"] == "white-box" for r in rows)
    seq = [r["acc"]["host"] for r in rows]
    assert seq == sorted(seq, reverse=True) and seq[-1] <= 0.1, seq
    assert acc(fp_result, "apgd-l2", 1.0) <= acc(fp_result, "cw", 1.0) + 0.05
    for r in (r for r in fp_result["rows"] + stq_result["rows"] if r["attack"] == "apgd-l2"):
        assert r["l2_median"] <= r["eps"] + 1e-6, r
    for r in (r for r in stq_result["rows"] if r["attack"] == "apgd-l2"):
        assert r["host_device_equal"] is True and r["acc"]["device"] == r["acc"]["host"], r


def test_l2_ball_on_grid() -> None:
    """The L2 projection on the input grid: inside the ball exactly, on the grid, no pixel
    moved further from the clean image, inputs already inside unchanged."""
    from toolchain.robustness.scoring import l2_ball_on_grid

    rng = np.random.default_rng(0)
    step = 1 / 256
    x0 = rng.integers(0, 256, (50, 8, 8, 1)) * step
    xa = np.clip(x0 + rng.integers(-60, 61, x0.shape) * step, 0, 255 * step)
    for eps in (0.1, 0.5, 2.0):
        p = l2_ball_on_grid(xa.astype(np.float32), x0.astype(np.float32), eps, step)
        d = (p.astype(np.float64) - x0).reshape(50, -1)
        assert (np.sqrt((d ** 2).sum(1)) <= eps + 1e-6).all()
        assert np.allclose(d / step, np.rint(d / step), atol=1e-3)
        assert (np.abs(d) <= np.abs((xa - x0).reshape(50, -1)) + 1e-6).all()
        inside = np.sqrt(((xa - x0).reshape(50, -1) ** 2).sum(1)) <= eps
        assert np.array_equal(p[inside], xa[inside].astype(np.float32))
        assert ((p >= 0) & (p <= 1)).all()


def test_every_figure_has_n_interval_and_convergence(fp_result: dict) -> None:
    tol = tolerance(20)
    for r in fp_result["rows"]:
        assert r["n"] == 20 and r["robust"] == round(r["acc"]["host"] * 20)
        assert tuple(r["ci"]) == wilson(r["robust"], 20) and r["budget"]
        if r["attack"] != "fgsm" and not r["sanity"]:  # fgsm has no budget to halve
            assert r["converged"] == (abs(r["acc"]["host"] - r["half_acc"]) <= tol + 1e-9
                                      and abs(r["run_acc"] - r["half_acc"]) <= tol + 1e-9), r
            # the full budget takes per image the stronger of its run and the half run
            assert r["acc"]["host"] <= min(r["half_acc"], r["run_acc"]) + 1e-9, r
    # L2 attacks are scored at L2 epsilons, with an unbounded row and the minimal perturbation
    cw = [r for r in fp_result["rows"] if r["attack"] == "cw"]
    assert [r["eps"] for r in cw] == [*R.AttackConfig().l2_eps, None]
    assert all(r["norm"] == "l2" for r in cw)
    seq = [r["acc"]["host"] for r in cw]
    assert seq == sorted(seq, reverse=True) and cw[0]["median_min_perturbation"] > 0
    # every bounded attack's robust accuracy falls (or stays) as epsilon grows: the figure at a
    # larger epsilon counts the images broken within a smaller one
    for attack in ("pgd", "square", "apgd-l2"):
        seq = [r["acc"]["host"] for r in sorted(
            (r for r in fp_result["rows"] if r["attack"] == attack and not r["sanity"]),
            key=lambda r: r["eps"])]
        assert len(seq) >= 3 and seq == sorted(seq, reverse=True), (attack, seq)


def test_every_attack_on_stq_host_and_virtual_board(stq_result: dict) -> None:
    res = stq_result
    assert res["device"] == "board virtual" and res["attack_oracle"] == "board virtual"
    assert res["host_device_mismatches"] == 0
    assert res["clean"]["host_device_equal"] is True
    assert all(r["host_device_equal"] is True for r in res["rows"])
    names = {r["attack"] for r in res["rows"]}
    assert names == {*R.names(), "transfer-fp-pgd"}
    for r in res["rows"]:
        assert r["acc"]["device"] == r["acc"]["host"]
        if r["kind"] == "black-box":
            assert r["queries"] > 0 and not r["budget_exhausted"]
    for name in ("boundary", "hsj", "zoo"):  # minimal attacks break the model when unbounded
        assert acc(res, name, None) <= 0.5, name
    assert acc(res, "pgd", 0.3) <= 0.2


@pytest.mark.slow
def test_seeded_attacks_give_the_same_bytes_on_every_oracle(
        digits_outdir: Path, digits_graph, digits_data, tmp_path: Path) -> None:
    """Square and Boundary (whose ART code draws from unseeded generators) on the reference, the
    host C, the virtual board and QEMU: the same queries and the same adversarial bytes."""
    from toolchain.robustness import attacks as A
    from toolchain.robustness import oracles

    cfg = R.for_dataset("digits", budget="quick", square_iter=15, boundary_iter=2)
    x, y = digits_data.x_test[:2].astype(np.float32), digits_data.y_test[:2]
    runs = []
    for board in ("reference", "host-c", "virtual", "netduinoplus2"):
        backend = board if board in ("reference", "host-c") else None
        dev = None if backend else board
        with oracles.open_oracle(digits_graph, digits_outdir, backend, dev,
                                 workdir=tmp_path / board) as o:
            log = tmp_path / f"{board}.jsonl"
            c = oracles.CountedOracle(o, log=log)
            advs = [A.run(a, oracles.art_classifier(c), x, y, cfg, 0.2 if a == "square" else
                          None).tobytes() for a in ("square", "boundary")]
            c.close()
        lines = [{**json.loads(ln), "seconds": 0} for ln in log.read_text().splitlines()]
        runs.append((c.queries, advs, lines))
    assert runs[0][0] > 0
    for other in runs[1:]:
        assert other[0] == runs[0][0]
        assert other[1] == runs[0][1]  # adversarial bytes
        assert other[2] == runs[0][2]  # the query logs (input digests, top-1)


def test_query_cap_stops_and_a_run_resumes(digits_h5: Path, digits_outdir: Path,
                                           tmp_path: Path) -> None:
    cfg = R.for_dataset("digits", budget="quick", attacks=("square",), eps=(0.2,), limit=6,
                        chunk=2, max_queries=60, square_iter=50, convergence=False,
                        sanity=False)
    lines: list[str] = []
    res = attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits", tmp_path,
                                log=lines.append)
    (r,) = res["rows"]
    assert r["budget_exhausted"] and 0 < r["queries"] <= 60 and r["attacked"] < 6
    assert any("stopped at the query budget (60)" in ln for ln in lines)
    log = [json.loads(ln) for ln in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "budget_exhausted" and log[-1]["budget"] <= 60
    assert sum(x["n"] for x in log if x["event"] == "query") == r["queries"]
    again = attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits", tmp_path,
                                  log=lines.append)
    assert any("resuming: 3 finished chunks" in ln for ln in lines)
    assert again["rows"] == res["rows"]
    assert len((tmp_path / "queries.jsonl").read_text().splitlines()) == len(log)


def test_budgets_doubled_until_converged(digits_h5: Path, digits_outdir: Path,
                                        tmp_path: Path) -> None:
    """--converge-up-to: a cell that did not converge runs again at twice its budget (the
    earlier run is the new one's half), and only that cell; the figure is the one a direct run
    at the final budget gives; a rerun resumes without a query."""
    from toolchain.errors import StqError

    base = {"attacks": ("square",), "eps": (0.05, 0.3), "limit": 20, "chunk": 5,
            "square_iter": 8, "sanity": False}
    lines: list[str] = []
    cfg = R.for_dataset("digits", budget="quick", converge_up_to=8, **base)
    res = attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits", tmp_path / "esc",
                                log=lines.append)
    assert "[attack] square@0.3: not converged at 1x the budget; running it at 2x" in lines
    assert not any("square@0.05: not converged" in ln for ln in lines)
    assert [r["eps"] for r in res["rows"]] == [0.05, 0.3]  # the table's order
    low, high = res["rows"]
    assert low["budget"] == "8 iterations per image, one image per call"
    factor = next(f for f in (2, 4, 8) if f"({f}x the quick budget" in high["budget"])
    assert high["converged"] or factor == 8
    assert high["budget"].startswith(f"{8 * factor} iterations per image")
    direct = attacks_eval.evaluate(
        digits_h5, digits_outdir, R.for_dataset("digits", budget="quick",
                                                **{**base, "eps": (0.3,),
                                                   "square_iter": 8 * factor}),
        "digits", tmp_path / "direct", log=quiet)
    (d,) = direct["rows"]
    keys = ("acc", "half_acc", "run_acc", "converged", "robust", "linf_median")
    assert {k: high[k] for k in keys} == {k: d[k] for k in keys}
    keys = {json.loads(ln)["key"]
            for ln in (tmp_path / "esc" / "chunks.jsonl").read_text().splitlines()}
    assert f"square@0.3*{factor}:square_iter={8 * factor}" in keys  # the key names the budget
    log = (tmp_path / "esc" / "queries.jsonl").read_text()
    again = attacks_eval.evaluate(digits_h5, digits_outdir, cfg, "digits", tmp_path / "esc",
                                  log=quiet)
    assert again["rows"] == res["rows"]
    assert (tmp_path / "esc" / "queries.jsonl").read_text() == log  # nothing attacked again
    with pytest.raises(StqError, match="power of 2"):
        R.for_dataset("digits", converge_up_to=3)
    with pytest.raises(StqError, match="needs the half-budget runs"):
        R.for_dataset("digits", converge_up_to=2, convergence=False)


def test_square_restarts_are_the_budget_once_above_one(digits_h5: Path, digits_outdir: Path,
                                                      tmp_path: Path) -> None:
    """--square-restarts R > 1: the half-budget run is R/2 restarts of the same iterations and
    --converge-up-to doubles restarts; the first restarts of a longer run are the shorter run
    (same seed), so every image a shorter run breaks is broken, with the same bytes, by a
    longer one; bad R refused; R = 1 keeps a run's id (earlier chunks resume)."""
    from toolchain.errors import StqError
    from toolchain.reference.model import load_artifact_dir
    from toolchain.robustness import oracles

    cfg2 = R.for_dataset("digits", budget="quick", square_iter=6, square_restarts=2)
    assert R.halved(cfg2, "square").square_restarts == 1
    assert R.halved(cfg2, "square").square_iter == 6
    assert R.doubled(cfg2, "square").square_restarts == 4
    assert R.doubled(R.halved(cfg2, "square"), "square").square_iter == 12  # 1: iterations
    assert R.describe_budget(cfg2)["square"] == \
        "6 iterations x 2 restarts per image, one image per call"
    with pytest.raises(StqError, match="--square-restarts must be >= 1"):
        R.for_dataset("digits", square_restarts=0)

    from toolchain.training import datasets

    g = load_artifact_dir(digits_outdir)
    ds = datasets.load("digits")
    x, y = ds.x_test[:20].astype(np.float32), ds.y_test[:20].astype(np.int64)
    clf = oracles.art_classifier(oracles.ReferenceOracle(g), (0.0, 1.0))
    advs = {r: R.get("square").factory(clf, x, y, R.for_dataset(
        "digits", budget="quick", square_iter=6, square_restarts=r), 0.3) for r in (1, 2, 4)}
    broken = {r: clf.predict(a).argmax(1) != y for r, a in advs.items()}
    assert broken[1].sum() < broken[4].sum()  # restarts find more at this tiny budget
    for short, long in ((1, 2), (2, 4)):
        assert not (broken[short] & ~broken[long]).any()
        assert np.array_equal(advs[short][broken[short]], advs[long][broken[short]])

    base = {"attacks": ("square",), "eps": (0.3,), "limit": 20, "chunk": 5, "square_iter": 6,
            "sanity": False}
    lines: list[str] = []
    res = attacks_eval.evaluate(digits_h5, digits_outdir, R.for_dataset(
        "digits", budget="quick", converge_up_to=4, square_restarts=2, **base), "digits",
        tmp_path / "esc", log=lines.append)
    (r,) = res["rows"]
    factor = next((f for f in (2, 4) if f"({f}x the quick budget" in r["budget"]), 1)
    assert r["budget"].startswith(f"6 iterations x {2 * factor} restarts per image"), r
    assert r["converged"] or factor == 4
    assert any("not converged at 1x" in ln for ln in lines) == (factor > 1)
    one = attacks_eval.evaluate(digits_h5, digits_outdir, R.for_dataset(
        "digits", budget="quick", **base), "digits", tmp_path / "one", log=quiet)
    assert json.loads((tmp_path / "one" / "chunks.jsonl").read_text().splitlines()[0]
                      )["run"].count("square_restarts") == 0
    assert one["rows"][0]["acc"]["host"] >= r["acc"]["host"]


def test_hsj_restarts_are_seeds_sharing_their_chunks(digits_h5: Path, digits_outdir: Path,
                                                    tmp_path: Path) -> None:
    """--hsj-restarts R > 1: restart r is HopSkipJump with seed + r x SEED_STRIDE, its own
    chunks (restart 0 is the plain run, byte for byte), per image the smallest misclassifying
    perturbation; halving and doubling are in restarts and a run with more restarts reuses the
    first ones' chunks (nothing attacked twice); the run id does not depend on R; bad R and R
    with --max-queries refused."""
    from toolchain.errors import StqError

    cfg2 = R.for_dataset("digits", budget="quick", hsj_iter=3, hsj_restarts=2)
    assert (R.halved(cfg2, "hsj").hsj_restarts, R.halved(cfg2, "hsj").hsj_iter) == (1, 3)
    assert R.doubled(cfg2, "hsj").hsj_restarts == 4
    assert R.describe_budget(cfg2)["hsj"] == (
        f"3 iterations x {cfg2.hsj_max_eval} evaluations x 2 restarts (seeds; per image the "
        "smallest adversarial) (decisions only)")
    with pytest.raises(StqError, match="--hsj-restarts must be >= 1"):
        R.for_dataset("digits", hsj_restarts=0)
    with pytest.raises(StqError, match="--max-queries caps one attack run"):
        R.for_dataset("digits", hsj_restarts=2, max_queries=100)

    x = np.zeros((3, 2), np.float32)
    y = np.array([0, 1, 2])
    a0, a1 = np.array([[3, 0], [1, 0], [0, 0]], np.float32), np.array([[1, 0], [2, 0], [0, 5]],
                                                                      np.float32)
    got = attacks_eval.smallest_adversarial(x, y, [(a0, np.array([1, 0, 2])),
                                                   (a1, np.array([2, 0, 2]))])
    # image 0: both misclassify, restart 1 is closer; 1: only restart 0; 2: neither (restart 0)
    assert got.tolist() == [[1, 0], [1, 0], [0, 0]]

    base = {"attacks": ("hsj",), "limit": 10, "chunk": 5, "hsj_iter": 2, "hsj_max_eval": 20,
            "sanity": False}
    plain = attacks_eval.evaluate(digits_h5, digits_outdir, R.for_dataset(
        "digits", budget="quick", **base), "digits", tmp_path / "plain", log=quiet)

    def chunks(d: str) -> list[dict]:
        return [json.loads(ln) for ln in (tmp_path / d / "chunks.jsonl").read_text().splitlines()]

    out = tmp_path / "restarts"
    lines: list[str] = []
    two = attacks_eval.evaluate(digits_h5, digits_outdir, R.for_dataset(
        "digits", budget="quick", hsj_restarts=2, **base), "digits", out, log=lines.append)
    recs = chunks("restarts")
    assert sorted((c["key"], c["start"]) for c in recs) == [
        ("hsj", 0), ("hsj", 5), ("hsj#r1", 0), ("hsj#r1", 5)]  # the half's restart 0 not twice
    first = {(c["key"], c["start"]): c for c in chunks("plain")}
    assert {c["run"] for c in recs} == {c["run"] for c in first.values()}  # R: not the run id
    for c in recs:
        if c["key"] == "hsj":
            assert c["adv"] == first[("hsj", c["start"])]["adv"]  # restart 0: the plain run
        else:  # another seed: other adversarials
            assert c["adv"] != first[("hsj", c["start"])]["adv"]
    (r2,) = (r for r in two["rows"] if r["eps"] == two["config"]["l2_eps"][0])
    assert "x 2 restarts" in r2["budget"]
    for p, t in zip(plain["rows"], two["rows"], strict=True):
        assert t["acc"]["host"] <= p["run_acc"]  # restarts keep the stronger per image
    four = attacks_eval.evaluate(digits_h5, digits_outdir, R.for_dataset(
        "digits", budget="quick", hsj_restarts=4, **base), "digits", out, log=quiet)
    recs = chunks("restarts")
    assert sorted((c["key"], c["start"]) for c in recs) == sorted(
        [("hsj", 0), ("hsj", 5)] + [(f"hsj#r{r}", s) for r in (1, 2, 3) for s in (0, 5)])
    # r0, r1 reused; and a plain run's directory takes restarts, its chunks as restart 0
    plain2 = attacks_eval.evaluate(digits_h5, digits_outdir, R.for_dataset(
        "digits", budget="quick", hsj_restarts=2, **base), "digits", tmp_path / "plain",
        log=quiet)
    assert [r["acc"] for r in plain2["rows"]] == [r["acc"] for r in two["rows"]]
    for t, f in zip(two["rows"], four["rows"], strict=True):
        assert f["acc"]["host"] <= t["acc"]["host"]
        assert f["half_acc"] == t["acc"]["host"]  # 4 restarts' half: the 2-restart run


def test_masking_checks_fire_on_a_gradient_masking_model(fp_h5: Path, tmp_path: Path) -> None:
    """A hard quantizer with zero gradient in front of the FP model: PGD does nothing, even at
    the whole input range; Square and PGD through BPDA break it; the checks say so."""
    import tensorflow as tf

    from toolchain.frontend.keras import load_keras_model

    fp = load_keras_model(fp_h5)
    inp = tf.keras.Input(fp.input_shape[1:])
    hard = tf.keras.layers.Lambda(lambda x: tf.stop_gradient(tf.round(x * 4) / 4) + 0.0 * x,
                                  name="hard_quantizer")
    masked = tf.keras.Model(inp, fp(hard(inp)))
    cfg = R.for_dataset("digits", budget="quick", attacks=("fgsm", "pgd", "pgd-bpda", "square"),
                        eps=(0.2, 0.3), limit=20, square_iter=60, convergence=False)
    lines: list[str] = []
    res = attacks_eval.evaluate(fp_h5, None, cfg, "digits", tmp_path, log=lines.append,
                                keras_model=masked, label="masked")
    assert acc(res, "pgd", 0.3) == res["clean"]["host"]  # no gradient, no attack
    assert acc(res, "pgd-bpda", 0.3) <= 0.2  # straight-through gradient, a real attack
    assert any("straight-through gradient for layers hard_quantizer" in ln for ln in lines)
    assert res["masking"]["flagged"]
    for name in ("black-box", "unbounded", "bpda", "large-eps"):
        assert check(res, name)["status"] == "FLAGGED", check(res, name)
    assert "Square leaves" in "; ".join(check(res, "black-box")["evidence"])


def test_transfer_matrix_and_npz_inputs(fp_h5: Path, digits_h5: Path, digits_data,
                                        tmp_path: Path, stq_cmd) -> None:
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x=digits_data.x_test[5:11], y=digits_data.y_test[5:11])
    out = tmp_path / "t"
    assert stq_cmd("attack", ["--model", str(fp_h5), "--attacks", "pgd", "--budget", "quick",
                              "--eps", "0.1,0.2", "--inputs", str(npz), "--no-convergence",
                              "--transfer", str(digits_h5), "-o", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n"] == 6
    tm = res["transfer_matrix"]
    assert tm["models"] == ["fp", "stq"] and tm["n"] == 6
    for k, e in enumerate(tm["eps"]):
        assert len(tm["acc"][k]) == 2 and all(len(r) == 2 for r in tm["acc"][k])
        assert tm["acc"][k][0][0] == pytest.approx(acc(res, "pgd", e), abs=1e-6)  # white-box
    html = (out / "robustness.html").read_text()
    assert 'id="transfer-chart"' in html and 'id="transfer"' in html


def test_report_merges_models_and_renders(fp_result: dict, stq_result: dict, tmp_path: Path,
                                          stq_cmd) -> None:
    dirs = []
    for res in (stq_result, fp_result):
        d = tmp_path / res["model"]
        d.mkdir()
        (d / "results.json").write_text(json.dumps(res))
        dirs.append(str(d))
    out = tmp_path / "report"
    assert stq_cmd("report", [*dirs, "-o", str(out)]) == 0
    md = (out / "robustness.md").read_text()
    for title in ("PGD", "AutoAttack", "Square", "Boundary", "HopSkipJump L2",
                  "Carlini-Wagner L2", "PGD transferred from fp"):
        assert f"| {title} |" in md, title
    assert "| attack | norm | epsilon | fp (n=20) | stq (n=6) |" in md
    assert "equal" in md and "DIFFERENT" not in md and "quick" in md
    data = json.loads((out / "robustness.json").read_text())
    assert data["models"] == ["fp", "stq"] and set(R.DEFAULT_ATTACKS) <= set(data["attacks"])
    r = render(out / "robustness.html", tmp_path / "profile", "attacks/robustness.png")
    for tid in ("accuracy", "budget", "convergence", "masking", "device", "queries"):
        assert f'<table id="{tid}">' in r.dom, tid
    for img in ("chart", "l2-chart", "convergence-chart"):
        assert f'id="{img}"' in r.dom, img
    assert "data:image/png;base64," in r.dom and "<th></th>" not in r.dom
    assert not re.search(r"<th>\s*</th>", r.dom)
    assert not r.console_errors, r.console_errors


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("argv", "message"), [
    (["--eps", "nan"], "--eps needs one or more positive finite values, got nan"),
    (["--eps", "5"], "--eps 5 is larger than the input range [0, 1]"),
    (["--l2-eps", "0,1"], "--l2-eps needs one or more positive finite values"),
    (["--attacks", "fgsm,nope"], "unknown attack(s) nope"),
    (["--board", "virtual"], "--board/--port/--qemu/--devices need --artifact"),
])
def test_attack_bad_inputs(argv: list[str], message: str, digits_h5: Path, tmp_path: Path,
                           stq_cmd, capsys) -> None:
    out = tmp_path / "out"
    assert stq_cmd("attack", ["--model", str(digits_h5), *argv, "-o", str(out)]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()  # no chunks.jsonl / queries.jsonl left behind


def test_report_merges_two_runs_of_one_model(fp_result: dict, tmp_path: Path) -> None:
    """A second run of the same model (one attack again at a larger budget) replaces that
    attack's rows in the report and keeps the others; other inputs are refused."""
    import copy

    from toolchain.errors import StqError
    from toolchain.reports.robustness import load_results

    again = copy.deepcopy(fp_result)
    again["rows"] = [{**r, "budget": "a larger one", "acc": {**r["acc"], "host": 0.0}}
                     for r in again["rows"] if r["attack"] == "fgsm"]
    assert again["rows"]
    for name, res in (("a", fp_result), ("b", again)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(res, default=float))
    (merged,) = load_results([tmp_path / "a", tmp_path / "b"])
    fgsm = [r for r in merged["rows"] if r["attack"] == "fgsm"]
    assert len(fgsm) == len(again["rows"]) and all(r["budget"] == "a larger one" for r in fgsm)
    saved = json.loads(json.dumps(fp_result, default=float))  # as read back from the file
    others = [r for r in saved["rows"] if r["attack"] != "fgsm"]
    assert [r for r in merged["rows"] if r["attack"] != "fgsm"] == others
    assert merged["masking"]["checks"] and len(merged["merged_from"]) == 2
    extra = copy.deepcopy(again)  # an attack the first run had not: before the sanity run
    extra["rows"] = [{**r, "attack": "zoo"} for r in extra["rows"]]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text(json.dumps(extra, default=float))
    (merged,) = load_results([tmp_path / "a", tmp_path / "c"])
    order = [r["attack"] for r in merged["rows"]]
    assert merged["rows"][-1]["sanity"] and order[-1 - len(extra["rows"]):-1] == \
        ["zoo"] * len(extra["rows"])
    again["n"] = fp_result["n"] + 1
    (tmp_path / "b" / "results.json").write_text(json.dumps(again, default=float))
    with pytest.raises(StqError, match="another n"):
        load_results([tmp_path / "a", tmp_path / "b"])


def test_report_merges_a_rerun_at_some_epsilons(fp_result: dict, tmp_path: Path) -> None:
    """A re-run of one attack at only the epsilons where it did not converge replaces those
    rows alone; the budget table then lists both budgets and where each ran; a re-run at an
    epsilon the first run has not is refused, naming it."""
    import copy

    from toolchain.errors import StqError
    from toolchain.reports.robustness import load_results, tables

    fgsm = [r for r in fp_result["rows"] if r["attack"] == "fgsm"]
    assert len(fgsm) >= 2
    last = fgsm[-1]["eps"]
    again = copy.deepcopy(fp_result)
    again["eps"] = [last]
    again["rows"] = [{**r, "budget": "a larger one", "acc": {**r["acc"], "host": 0.0}}
                     for r in again["rows"] if r["attack"] == "fgsm" and r["eps"] == last]
    for name, res in (("a", fp_result), ("b", again)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(res, default=float))
    (merged,) = load_results([tmp_path / "a", tmp_path / "b"])
    got = [(r["eps"], r["budget"], r["acc"]["host"]) for r in merged["rows"]
           if r["attack"] == "fgsm"]
    assert got == [(r["eps"], r["budget"], r["acc"]["host"]) for r in fgsm[:-1]] + [
        (last, "a larger one", 0.0)]
    assert len(merged["rows"]) == len(fp_result["rows"]) and merged["eps"] == fp_result["eps"]
    budget = [row for row in tables([merged])["budget"].rows if row[0] == fgsm[0]["title"]]
    assert [row[3:] for row in budget] == [
        [fgsm[0]["budget"], "epsilon " + ", ".join(f"{r['eps']:g}" for r in fgsm[:-1])],
        ["a larger one", f"epsilon {last:g}"]]
    again["eps"] = [9.5]
    (tmp_path / "b" / "results.json").write_text(json.dumps(again, default=float))
    with pytest.raises(StqError, match=r"at eps 9.5, which the first .* has not"):
        load_results([tmp_path / "a", tmp_path / "b"])


def test_report_bad_inputs(tmp_path: Path, stq_cmd, capsys) -> None:
    out = tmp_path / "out"
    assert stq_cmd("report", [str(tmp_path / "none"), "-o", str(out)]) == 2
    assert "results.json not found" in _one_error_line(capsys)
    for name, content in (("list", "[1, 2]"), ("dict", '{"model": "x", "rows": []}'),
                          ("rows", json.dumps({"model": "x", "n": 1, "clean": {}, "eps": [],
                                               "l2_eps": [], "rows": [{"attack": "pgd"}]})),
                          ("bad", "{not json")):
        p = tmp_path / f"{name}.json"
        p.write_text(content)
        assert stq_cmd("report", [str(p), "-o", str(out)]) == 2
        err = _one_error_line(capsys)
        assert str(p) in err and ("results.json" in err or "not valid JSON" in err), err
    assert not out.exists()


@pytest.mark.unit
def test_full_budget_keeps_the_stronger_run_per_image() -> None:
    y = np.array([0, 1, 2, 3])
    x_full, x_half = np.zeros((4, 2, 2, 1)), np.ones((4, 2, 2, 1))
    # image 0: only the half run breaks it; 1: both, half smaller; 2: both, full smaller;
    # 3: neither (the full run's input stays)
    size_f, size_h = np.array([0.0, 0.9, 0.3, 0.0]), np.array([0.5, 0.4, 0.8, 0.2])
    full = (x_full, size_f, size_f, size_f, np.array([0, 0, 0, 3]), np.array([0, 0, 0, 3]),
            None, np.array([False, False, True, False]))
    half = (x_half, size_h, size_h, size_h, np.array([1, 0, 0, 3]), np.array([1, 0, 0, 3]),
            None, np.array([False, False, False, True]))
    xa, linf, l2, size, ph, pk, pd, bad = _worst_case(full, half, y)
    assert xa[:, 0, 0, 0].tolist() == [1, 1, 0, 0]
    assert size.tolist() == [0.5, 0.4, 0.3, 0.0] and ph.tolist() == [1, 0, 0, 3]
    assert pd is None and bad.tolist() == [False, False, True, False]  # the chosen run's
    # converged: the full run alone and the worst case of both, each against the half run
    assert converged(0.40, 0.42, 0.38, 100) and not converged(0.40, 0.61, 0.38, 100)
    assert not converged(0.40, 0.40, 0.30, 100)


class _FirstPixel:
    """A stand-in classifier for the scoring's unit test (the end-to-end runs above score real
    attacks): class 1 when the first pixel is above 0.05, else class 0."""

    name, classes = "first-pixel", 2

    def __call__(self, x: np.ndarray) -> np.ndarray:
        hot = (x.reshape(len(x), -1)[:, 0] > 0.05).astype(np.float32)
        return np.stack([1 - hot, hot], axis=1)


@pytest.mark.unit
def test_robust_accuracy_is_closed_over_smaller_epsilons() -> None:
    from toolchain.robustness.masking import diagnose
    from toolchain.robustness.scoring import score

    n = 10
    x, y = np.zeros((n, 2, 2, 1), np.float32), np.zeros(n, int)

    def adv(broken: range, e: float) -> np.ndarray:
        a = x.copy()
        a[list(broken), 0, 0, 0] = e
        return a

    def job(e: float, half: bool, broken: range) -> dict:
        return {"attack": "square", "base": "square", "eps": e, "key": f"square@{e:g}",
                "half": half, "kind": "black-box", "sanity": False, "adv": adv(broken, e),
                "budget": "b", "queries": 1, "seconds": 0.0, "exhausted": False,
                "attacked": n, "oracle": "first-pixel"}

    # at 0.1 the run breaks images 0-4 (its half run 0-3); at 0.2 the run breaks only image 5
    # and its half run nothing: a larger ball where the search did worse
    jobs = [job(0.1, False, range(5)), job(0.1, True, range(4)), job(0.2, False, range(5, 6)),
            job(0.2, True, range(0))]
    cfg = R.for_dataset("digits", attacks=("square",), eps=(0.1, 0.2), l2_eps=(0.5,))
    res = score("m", None, _FirstPixel(), _FirstPixel(), None, x, y, jobs, cfg)
    r1, r2 = row(res, "square", 0.1), row(res, "square", 0.2)
    assert (r1["acc"]["host"], r1["half_acc"], r1["run_acc"]) == (0.5, 0.6, 0.5)
    assert "own_eps_acc" not in r1
    # at 0.2 every image broken within 0.1 counts as broken (the adversarial is in the ball)
    assert (r2["acc"]["host"], r2["robust"], r2["found"]) == (0.4, 4, 6)
    # each series at 0.2 against the figure shown at 0.1 (images 0-4 broken)
    assert (r2["half_acc"], r2["run_acc"], r2["own_eps_acc"]) == (0.5, 0.4, 0.9)
    # the masking check reads the run at 0.2 alone, so its rise still shows
    res["masking"] = diagnose(res)
    c = check(res, "large-eps")
    assert c["status"] == "FLAGGED", c
    assert any("rises" in e and "0.900 at eps 0.2" in e and "alone" in e for e in c["evidence"])
    # without the rise (the run at 0.2 breaks a superset) nothing is added or flagged
    jobs[2] = job(0.2, False, range(7))
    res = score("m", None, _FirstPixel(), _FirstPixel(), None, x, y, jobs, cfg)
    assert row(res, "square", 0.2)["acc"]["host"] == 0.3
    assert "own_eps_acc" not in row(res, "square", 0.2)
    # a smaller epsilon that did not converge (its half run broke nothing, its run images 0-4)
    # does not make a larger one unconverged whose own runs agree (both break images 5-6)
    jobs = [job(0.1, False, range(5)), job(0.1, True, range(0)), job(0.2, False, range(5, 7)),
            job(0.2, True, range(5, 7))]
    res = score("m", None, _FirstPixel(), _FirstPixel(), None, x, y, jobs, cfg)
    assert row(res, "square", 0.1)["converged"] is False
    assert row(res, "square", 0.2)["converged"] is True
    assert row(res, "square", 0.2)["acc"]["host"] == 0.3
    # own figures that fall steadily do not flag, however far the closure lowers them: the
    # check compares each epsilon's run alone with the smaller epsilon's run alone
    cfg3 = R.for_dataset("digits", attacks=("square",), eps=(0.1, 0.2, 0.3), l2_eps=(0.5,))
    jobs = [job(0.1, False, range(2)), job(0.2, False, range(2, 5)),
            job(0.3, False, range(5, 9))]
    res = score("m", None, _FirstPixel(), _FirstPixel(), None, x, y, jobs, cfg3)
    assert [row(res, "square", e)["acc"]["host"] for e in (0.1, 0.2, 0.3)] == [0.8, 0.5, 0.1]
    assert [row(res, "square", e).get("own_eps_acc") for e in (0.2, 0.3)] == [0.7, 0.6]
    res["masking"] = diagnose(res)
    assert not any("rises" in e for e in check(res, "large-eps")["evidence"])
