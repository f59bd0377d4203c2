"""The experiment report's table reads each model's rows at the experiment's epsilons, on the
model's own scale: a .tflite baseline attacked on its 0..255 input range has its epsilons
mapped position by position (robustness/twin.py), not left as empty cells."""

from __future__ import annotations

import pytest

from toolchain.pipeline import experiment_report as R

pytestmark = pytest.mark.unit


def _rows(scale: float, acc: float) -> list[dict]:
    return [{"attack": a, "eps": e * scale, "acc": {"host": acc, "device": acc}}
            for a, e in (("fgsm", 8 / 255), ("pgd", 8 / 255), ("cw", 0.5), ("boundary", 0.5),
                         ("zoo", 0.5), ("square", 8 / 255))]


def test_table_reads_a_baseline_at_its_own_scale() -> None:
    s = {"attack_config": {"eps": [8 / 255], "l2_eps": [0.25, 0.5, 1.0]},
         "attacks": {"results": {
             "stq": {"n": 5, "clean": {"host": 0.8, "device": 0.8}, "rows": _rows(1.0, 0.4),
                     "eps": [8 / 255], "l2_eps": [0.25, 0.5, 1.0]},
             "baseline": {"n": 5, "clean": {"host": 0.6, "device": 0.6},
                          "rows": _rows(255.0, 0.2), "eps": [8.0],
                          "l2_eps": [63.75, 127.5, 255.0]}}},
         "builds": {"usage": {}}, "validate": {}, "convert": {}}
    _, rows = R.table_rows(s)
    by = {r["model"]: r for r in rows}
    for a in R.COLUMNS:
        assert by["stq"][a]["host"] == 0.4, a
        assert by["baseline"][a] == {"host": 0.2, "device": 0.2}, a
