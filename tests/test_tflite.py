"""TFLite int8 frontend on the host: the MLPerf Tiny ResNet-8 and the Keras-made models convert,
the NumPy reference equals TFLite's BUILTIN_REF interpreter byte for byte, the generated C
(reference and DSP kernels, compiled with gcc) equals the reference, and unsupported models are
refused with one clear line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tflite_helpers import KERAS_MADE, MODELS, RESNET, cifar, int8_inputs, interpreter_outputs
from toolchain.cli.main import main
from toolchain.device.host_model import HostModel
from toolchain.frontend.tflite import convert_tflite
from toolchain.ir import artifact
from toolchain.pipeline.convert import convert
from toolchain.reference import model as reference


def test_resnet8_reference_equals_builtin_ref_on_200_cifar_images() -> None:
    g = convert_tflite(RESNET)
    assert [n.op for n in g.nodes].count("tfl_conv2d") == 9
    xs, labels = cifar(200)
    want = interpreter_outputs(RESNET, xs)
    got = reference.predict(g, xs)
    assert got.dtype == np.int8 and got.shape == (200, 10)
    assert np.array_equal(got, want)
    assert len({r.tobytes() for r in got}) > 20  # outputs vary across inputs
    acc = float(np.mean(got.argmax(1) == labels))
    print(f"MLPerf ResNet-8 int8, host reference: accuracy {acc:.4f} on n=200 CIFAR-10 images")
    assert acc > 0.8


def _float_or_int8(g, path: Path, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(interpreter inputs, integer model inputs): a float-I/O model gets real inputs."""
    if g.input_format.get("float_input"):
        real = np.random.default_rng(1).normal(0, 1.5, xs.shape).astype(np.float32)
        return real, reference.quantize_input(g, real)
    return xs, xs


@pytest.mark.parametrize("name", KERAS_MADE)
def test_keras_made_model_reference_and_c_are_exact(name: str, tmp_path: Path) -> None:
    path = MODELS / f"{name}.tflite"
    g = convert_tflite(path)
    tf_in, xs = _float_or_int8(g, path, int8_inputs(convert_tflite(path), 32))
    want = interpreter_outputs(path, tf_in)
    got = reference.predict(g, xs)
    if g.output_info["dequantize"]:  # DEQUANTIZE: float32(double(S) * (q - Z))
        t = g.tensors[g.output]
        got_f = (float(t.scale) * (got.astype(np.float64) - t.zero_point)).astype(np.float32)
        assert np.array_equal(got_f.view(np.uint8), want.astype(np.float32).view(np.uint8))
    else:
        assert np.array_equal(got, want)
    assert len({r.tobytes() for r in got}) > 8
    for kernels in ("reference", "optimized"):
        out = tmp_path / kernels
        convert(path, out, kernels=kernels)
        y, top = HostModel(reference.load_artifact_dir(out), out / "c",
                           tmp_path / f"host-{kernels}").predict(xs)
        assert np.array_equal(y, got), kernels
        assert np.array_equal(top, got.argmax(1))


def test_fast_conv_equals_reference_conv_on_resnet8_in_c(tmp_path: Path) -> None:
    xs, _ = cifar(8)
    outs = {}
    for kernels in ("reference", "optimized"):
        convert(RESNET, tmp_path / kernels, kernels=kernels)
        g = reference.load_artifact_dir(tmp_path / kernels)
        hm = HostModel(g, tmp_path / kernels / "c", tmp_path / f"host-{kernels}")
        outs[kernels] = hm.layers(xs)
    assert "_fast(" in (tmp_path / "optimized" / "c" / "model.c").read_text()
    env = reference.run(g, xs[0])
    for name, arr in outs["optimized"][0].items():  # every layer, not only the output
        assert np.array_equal(arr, env[name]), name
    for a, b in zip(outs["reference"], outs["optimized"], strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_artifact_keeps_zero_points_and_old_artifacts_stay_valid(tmp_path: Path) -> None:
    g = convert_tflite(MODELS / "dense_add_relu6.tflite")
    assert any(t.zero_point != 0 for t in g.tensors.values())
    artifact.save(g, tmp_path / "m.stqa")
    g2 = artifact.load(tmp_path / "m.stqa")
    assert [t.zero_point for t in g2.tensors.values()] == [t.zero_point for t in g.tensors.values()]
    t = next(iter(g.tensors.values()))
    t.zero_point = 0
    assert "zero_point" not in t.to_json()  # what version-1 artifacts hold: still read as 0


@pytest.mark.parametrize("name, needles", [
    ("bad_float", ["op 0 (FULLY_CONNECTED)", "float model"]),
    ("bad_int16", ["int16", "not supported"]),
    ("bad_tanh", ["op 1 (TANH) is not supported", "CONV_2D"]),
])
def test_unsupported_models_fail_with_one_line(name: str, needles: list[str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["convert", str(MODELS / f"{name}.tflite"), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("stq convert: error: "), err
    assert f"{name}.tflite" in err
    for n in needles:
        assert n in err, (n, err)
    assert not out.exists() or list(out.iterdir()) == []
