"""White-box attacks on a TFLite model through the float twin built from the IR
(toolchain/robustness/twin.py), and the black-box Square attack with an integer oracle, on
real CIFAR-10 images of the MLPerf Tiny ResNet-8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tflite_helpers import CIFAR, MODELS, RESNET, cifar
from toolchain.cli.main import main
from toolchain.frontend.tflite import convert_tflite
from toolchain.pipeline.convert import convert
from toolchain.reference import model as reference
from toolchain.robustness import attacks as A
from toolchain.robustness.evaluate import evaluate
from toolchain.robustness.twin import build_twin

pytestmark = pytest.mark.slow
DATA = CIFAR.parent.parent  # the folder holding cifar-10-batches-py/


def test_twin_tracks_the_integer_model_on_cifar() -> None:
    g = convert_tflite(RESNET)
    xq, _ = cifar(50)
    t = g.tensors[g.input]
    logits = build_twin(g)((xq.astype(np.float32) - t.zero_point) * t.scale).numpy()
    agree = float(np.mean(logits.argmax(1) == reference.predict(g, xq).argmax(1)))
    assert agree >= 0.9, agree


def test_pgd_through_twin_and_square_on_integer_oracle(tmp_path: Path) -> None:
    convert(RESNET, tmp_path / "model", kernels="reference")
    xq, labels = cifar(4)
    x01 = (xq.astype(np.float32) + 128) / 255.0  # dataset units; the model's are pixels
    cfg = A.AttackConfig(attacks=("pgd", "square"), eps=(8 / 255,), limit=4, pgd_iter=5,
                         square_iter=10, chunk=4, convergence=False, sanity=False)
    res = evaluate(RESNET, tmp_path / "model", cfg, "cifar10", tmp_path / "attack",
                   log=lambda s: None, inputs=(x01, labels))
    rows = {r["attack"]: r for r in res["rows"]}
    assert res["clean"]["host"] == float(np.mean(reference.predict(
        reference.load_artifact_dir(tmp_path / "model"), xq).argmax(1) == labels))
    assert rows["pgd"]["eps"] == pytest.approx(8.0) and rows["pgd"]["linf_median"] <= 8.0
    assert rows["pgd"]["acc"]["host"] < res["clean"]["host"]  # the twin's gradients transfer
    assert rows["square"]["queries"] > 0 and rows["square"]["oracle"] == "reference"


@pytest.mark.parametrize("model, args, needles", [
    (RESNET, [], ["mlperf_tiny_ic_resnet8_int8.tflite on digits", "shape (8, 8, 1)",
                  "takes (32, 32, 3)", "--dataset cifar10 --data-dir"]),
    (RESNET, ["--dataset", "cifar10"], ["dataset cifar10 needs --data-dir"]),
    (RESNET, ["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"],
     ["/nonexistent/cifar does not exist"]),
    (MODELS / "dense_add_relu6.tflite", ["--dataset", "cifar10", "--data-dir", str(DATA)],
     ["dense_add_relu6.tflite on cifar10", "shape (32, 32, 3)", "takes (20,)"]),
])
def test_attack_tflite_without_usable_data_fails_with_one_line(
        model: Path, args: list[str], needles: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "attack"
    code = main(["attack", str(model), *args, "--attacks", "pgd", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("stq attack: error: "), err
    for n in needles:
        assert n in err, (n, err)
    assert not out.exists()  # nothing converted, nothing written
