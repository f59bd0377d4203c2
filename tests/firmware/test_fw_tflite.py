"""TFLite int8 models on QEMU netduinoplus2: the MLPerf Tiny ResNet-8 (DSP conv kernels) and
every Keras-made model, each output byte equal to the host reference (itself equal to TFLite's
BUILTIN_REF interpreter: tests/test_tflite.py). The QEMU set of Keras-made models is the two
that together hold nearly every supported op (PAD, ADD, SAME pools, dilated depthwise dm 2,
MEAN, standalone RELU, depthwise dm 1, MAX_POOL, FC, SOFTMAX; ResNet-8 adds strided and 1x1
convs); all six are compiled and checked with gcc on the host in tests/test_tflite.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tflite_helpers import MODELS, RESNET, cifar, int8_inputs
from toolchain.pipeline.convert import convert
from toolchain.reference import model as reference
from toolchain.validate.run import ValidateConfig, validate

pytestmark = pytest.mark.slow


def _validate(model: Path, xs: np.ndarray, tmp_path: Path) -> dict:
    out = tmp_path / "model"
    convert(model, out)
    np.save(tmp_path / "x.npy", xs)
    return validate(ValidateConfig("netduinoplus2", out, tmp_path / "val", dataset=None,
                                   inputs=tmp_path / "x.npy", progress=False))


def test_resnet8_bit_exact_on_qemu(tmp_path: Path) -> None:
    xs, labels = cifar(4)
    s = _validate(RESNET, xs, tmp_path)
    assert s["validated"] == 4 and s["bit_exact"] == 4 and s["mismatches"] == 0
    assert 0 < s["mean_instructions"] < 28.2e6  # Arm CMSIS-NN's figure on this board


@pytest.mark.parametrize("name", ["pad_add_pools", "dw1_maxpool_dense_softmax"])
def test_keras_made_model_bit_exact_on_qemu(name: str, tmp_path: Path) -> None:
    path = MODELS / f"{name}.tflite"
    out = tmp_path / "probe"
    convert(path, out)
    xs = int8_inputs(reference.load_artifact_dir(out), 3, seed=5)
    s = _validate(path, xs, tmp_path)
    assert s["validated"] == 3 and s["bit_exact"] == 3 and s["mismatches"] == 0
