"""Per-layer JR search (runs, picks by its rule, writes its report) and the Quanos bit
assignment on a model whose most sensitive layer is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toolchain.errors import StqError


def _synthetic():
    """Four identity-ish dense layers: d1 adds 100 (tiny relative noise), d2 subtracts it
    again (the clean activation is x in [0.4, 0.6]: the largest ANS), d3 adds 0.6 (about half
    of d2's ANS), d4 maps to 3 classes on top of +100 (tiny)."""
    import tensorflow as tf

    d = 16
    inp = tf.keras.Input((d,))
    eye = np.eye(d, dtype=np.float32)
    layers = [("d1", eye, 100.0), ("d2", eye, -100.0), ("d3", eye, 0.6)]
    x = inp
    for name, w, b in layers:
        la = tf.keras.layers.Dense(d, name=name)
        x = la(x)
        la.set_weights([w, np.full(d, b, np.float32)])
    head = tf.keras.layers.Dense(3, name="d4")
    out = head(x)
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(size=(d, 3)).astype(np.float32), np.full(3, 100.0, np.float32)])
    return tf.keras.Model(inp, out)


def test_quanos_bits_follow_the_ans_rule(tmp_path):
    from toolchain.training import quanos

    model = _synthetic()
    rng = np.random.default_rng(1)
    x = rng.uniform(0.4, 0.6, (32, 16)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    rep = quanos.analyze(model, x, y, eps=0.05, keep_edges=False, out=tmp_path)
    ans = {r["name"]: r["ans"] for r in rep["layers"]}
    assert max(ans, key=ans.get) == "d2"
    assert rep["bits"] == {"d1": 8, "d2": 2, "d3": 4, "d4": 8}
    saved = json.loads((tmp_path / "quanos.json").read_text())
    assert saved["bits"] == rep["bits"] and "ISLPED 2020" in saved["reference"]
    # keep_edges pins the first and last layers to 8 bits whatever their ANS
    assert quanos.assign_bits({"a": 1.0, "b": 0.5, "c": 0.1}, keep_edges=True) == \
        {"a": 8, "b": 4, "c": 8}
    assert quanos.assign_bits({"a": 1.0, "b": 0.5, "c": 0.1}) == {"a": 2, "b": 4, "c": 8}
    with pytest.raises(StqError, match="thresholds"):
        quanos.assign_bits({"a": 1.0}, thresholds=(0.8, 0.2))


def test_quanos_model_converts_with_its_bit_widths(tmp_path):
    from toolchain.frontend.keras import convert_model
    from toolchain.training import zoo

    bits = {"conv1": 8, "conv2": 2, "logits": 4}
    m = zoo.digits("quanos", int8_edges=False, bits=bits)
    assert "ternary" in str(m.get_layer("conv2").kernel_quantizer_internal)
    assert "quantized_bits(4" in str(m.get_layer("logits").kernel_quantizer_internal)
    g = convert_model(m, name="q")
    kinds = {n.name: n.attrs.get("weight_kind") for n in g.nodes if "weights" in n.arrays}
    assert kinds["conv2"] == "ternary" and kinds["conv1"] == "int8" == kinds["logits"]
    with pytest.raises(StqError, match="bit widths"):
        zoo.digits("quanos", bits={"conv1": 3})


@pytest.mark.slow
@pytest.mark.long
def test_jr_search_picks_by_its_rule_and_writes_report(tmp_path):
    from toolchain.training import datasets, jrsearch
    from toolchain.training.train import TrainConfig

    ds = datasets.load("digits")
    cands = [jrsearch.Candidate("logits only", {}),
             jrsearch.Candidate("uniform", {"act1": 1.0, "act2": 1.0})]
    rep = jrsearch.search(TrainConfig(model="digits", epochs=1, limit=64), tmp_path,
                          dataset=ds, candidates=cands, score_limit=40, log=lambda s: None)
    assert rep["blocks"] == ["act1", "act2"]
    rows = rep["candidates"]
    assert len(rows) == 2 and rep["best"] == jrsearch.choose(rows, rep["tolerance"])
    assert rows[1]["applied_weights"]["act1"] == pytest.approx(10 / (8 * 8 * 16))
    best_clean = max(r["clean"] for r in rows)
    chosen = rows[rep["best"]]
    assert chosen["clean"] >= best_clean - rep["tolerance"]
    md = (tmp_path / "jr_search.md").read_text()
    assert "**yes**" in md and f"n = {rep['n_val']}" in md
    assert json.loads((tmp_path / "jr_search.json").read_text())["best"] == rep["best"]
    # the rule on known scores: clean within tolerance, then FGSM, then Jacobian norm
    fake = [{"clean": 0.90, "fgsm": 0.5, "jacobian_norm": 3.0},
            {"clean": 0.89, "fgsm": 0.6, "jacobian_norm": 9.0},
            {"clean": 0.80, "fgsm": 0.9, "jacobian_norm": 1.0},
            {"clean": 0.895, "fgsm": 0.6, "jacobian_norm": 2.0}]
    assert jrsearch.choose(fake, 0.02) == 3
    with pytest.raises(StqError, match="no block output layer"):
        jrsearch.search(TrainConfig(model="digits", epochs=1, limit=50), tmp_path / "bad",
                        dataset=ds, candidates=[jrsearch.Candidate("x", {"nope": 1.0})],
                        log=lambda s: None)
