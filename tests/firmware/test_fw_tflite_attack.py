"""`stq attack model.tflite` from the command line on real CIFAR-10 images (the standard
python batches of ../shared/data/cifar10-subset): PGD through the IR's float twin on the host
and Square with QEMU netduinoplus2 as the oracle, every adversarial input replayed on the host
reference and the device. A quick budget on two images (Square costs one device inference of
the ResNet-8 per query, about 1-2 s each on this machine)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tflite_helpers import CIFAR, RESNET, cifar
from toolchain.reference import model as reference

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DATA = CIFAR.parent.parent  # the folder holding cifar-10-batches-py/


def test_stq_attack_tflite_pgd_twin_and_square_on_qemu(tmp_path: Path) -> None:
    out = tmp_path / "attack"
    env = {**os.environ, "PYTHONPATH": str(REPO), "STQ_NO_PROGRESS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "toolchain.cli.main", "attack", str(RESNET), "--dataset",
         "cifar10", "--data-dir", str(DATA), "--attacks", "pgd,square", "--board",
         "netduinoplus2", "--limit", "2", "--eps", str(8 / 255), "--pgd-iter", "3",
         "--pgd-restarts", "1", "--square-iter", "1", "--no-convergence", "--no-sanity",
         "--json", "-o", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout)  # --json: nothing else on stdout
    res = json.loads((out / "results.json").read_text())
    assert printed["rows"] == res["rows"]
    # the run converted the model into OUT/model and attacked the real test images
    g = reference.load_artifact_dir(out / "model")
    xq, labels = cifar(2)
    clean_ok = reference.predict(g, xq).argmax(1) == labels
    host_clean = float(np.mean(clean_ok))
    assert res["n"] == 2 and res["clean"]["n"] == 2 and res["dataset"] == "cifar10"
    assert res["clean"]["host"] == host_clean and res["clean"]["device"] == host_clean
    assert res["device"] == "board netduinoplus2" and res["attack_oracle"] == res["device"]
    rows = {r["attack"]: r for r in res["rows"]}
    assert set(rows) == {"pgd", "square"}
    for r in rows.values():
        assert r["n"] == 2 and r["eps"] == pytest.approx(8.0)  # 8/255 of 0..255 pixels
        assert r["acc"]["device"] == r["acc"]["host"] and r["host_device_equal"] is True
        assert r["linf_median"] <= 8.0
    assert res["host_device_mismatches"] == 0  # every replayed adversarial input
    assert rows["pgd"]["acc"]["host"] < host_clean  # the twin's gradients transfer
    assert rows["square"]["queries"] > 0 and rows["square"]["oracle"] == "board netduinoplus2"
    # the device queries are logged; the Square inputs replayed on the reference score as shown
    queries = [json.loads(s) for s in (out / "queries.jsonl").read_text().splitlines()]
    assert sum(q["n"] for q in queries if q.get("event") == "query") >= rows["square"]["queries"]
    chunk = next(json.loads(s) for s in (out / "chunks.jsonl").read_text().splitlines()
                 if json.loads(s)["key"].startswith("square"))
    adv = np.frombuffer(base64.b64decode(chunk["adv"]), "<f4").reshape(2, 32, 32, 3)
    assert adv.min() >= 0 and adv.max() <= 255  # the model's units: pixel values
    pred = reference.predict(g, reference.quantize_input(g, adv)).argmax(1)
    assert rows["square"]["acc"]["host"] == float(np.mean(clean_ok & (pred == labels)))
