"""QKeras files from newer tf-keras read in the pinned Keras 2.15 stack: the shared file saved by
tf-keras 2.21 converts and its C is bit-exact on QEMU; fixtures rewritten to look like 2.16-2.21
files load with the same weights; an unreadable file names the Keras that wrote it. A Flatten /
Reshape before the input quantizer (an MLP on images) converts and agrees with QKeras."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from probes import randomized
from test_reference_vs_qkeras import _pre_softmax, explain_differences

from toolchain.cli.main import main
from toolchain.device.host_model import HostModel
from toolchain.errors import StqError
from toolchain.frontend import keras as frontend
from toolchain.frontend import keras_compat
from toolchain.pipeline.convert import convert
from toolchain.reference import model as reference

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models" / "resdw_tfkeras221.h5"


def _as_newer_keras(src: Path, dst: Path, version: str = "2.21.0") -> None:
    """Rewrite a Keras-2.15 .h5 as tf-keras 2.16-2.21 write it: InputLayer with `batch_shape`
    and `optional`, DTypePolicy dtypes, and the newer keras_version."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        for layer in cfg["config"]["layers"]:
            c = layer["config"]
            if layer["class_name"] == "InputLayer":
                c["batch_shape"] = c.pop("batch_input_shape")
                c["optional"] = False
            elif isinstance(c.get("dtype"), str):
                c["dtype"] = {"module": "keras", "class_name": "DTypePolicy",
                              "config": {"name": c["dtype"]}, "registered_name": None}
        f.attrs["model_config"] = json.dumps(cfg)
        f.attrs["keras_version"] = version


def _stored_weights(path: Path) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        g = f["model_weights"]
        for name in g.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            wn = g[name].attrs["weight_names"]
            out[name] = [np.array(g[name][w.decode() if isinstance(w, bytes) else w])
                         for w in wn]
    return out


def test_shared_tfkeras221_file_loads_with_its_weights(digits_data) -> None:
    assert keras_compat.writer_version(SHARED) == "2.21.0"
    model = frontend.load_keras_model(SHARED)
    stored = _stored_weights(SHARED)
    assert sum(len(w) for w in stored.values()) > 10
    for layer in model.layers:
        for got, want in zip(layer.get_weights(), stored.get(layer.name, []), strict=True):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
    g = frontend.convert_model(model, name="resdw")
    x = digits_data.x_test[:120]
    counts = explain_differences(g, model, x)  # every difference is a tie
    k = _pre_softmax(model).predict(x, verbose=0)
    y = reference.predict(g, reference.quantize_input(g, x))
    assert float(np.mean(y.argmax(1) == k.argmax(1))) >= 0.99, counts
    assert len(set(y.argmax(1).tolist())) >= 5  # outputs vary across inputs


@pytest.mark.slow
def test_shared_tfkeras221_file_bit_exact_on_qemu(tmp_path: Path, digits_data) -> None:
    from toolchain.device.qemu import QemuBoard
    from toolchain.device.text_client import StqDevice
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build
    from toolchain.ir import artifact

    out = tmp_path / "resdw"
    assert main(["convert", str(SHARED), "-o", str(out)]) == 0
    result = build(out, load_board("netduinoplus2"), tmp_path / "fw")
    g = artifact.load(out / "model.stqa")
    xs = reference.quantize_input(g, digits_data.x_test[:30])
    want = [reference.run(g, x)[g.output].reshape(-1).astype("<i4").tobytes() for x in xs]
    assert g.tensors[g.output].itemsize == 4 and len(set(want)) > 10
    with QemuBoard(result.elf, timeout=240) as qemu:
        with StqDevice.open(qemu.port_url, timeout=60) as dev:
            got = [dev.infer(np.ascontiguousarray(x).tobytes())[0] for x in xs]
            dev.quit()
    assert got == want


def test_rewritten_fixture_loads_like_the_original(tmp_path: Path, digits_data) -> None:
    import tensorflow as tf

    model = randomized("dense")  # Sequential: its config nests the layers one level deeper
    src = tmp_path / "orig.h5"
    model.save(src)
    newer = tmp_path / "newer.h5"
    _as_newer_keras(src, newer, "2.19.0")
    custom: dict[str, Any] = {}
    from qkeras.utils import _add_supported_quantized_objects

    _add_supported_quantized_objects(custom)
    with pytest.raises(Exception):  # noqa: B017 - the pinned Keras refuses the file as it is
        tf.keras.models.load_model(str(newer), custom_objects=custom, compile=False)
    loaded = frontend.load_keras_model(newer)
    for a, b in zip(loaded.layers, model.layers, strict=True):
        assert type(a) is type(b)
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb, err_msg=a.name)
    x = digits_data.x_test[:50]
    y = loaded.predict(x, verbose=0)
    np.testing.assert_array_equal(y, model.predict(x, verbose=0))
    assert len({row.tobytes() for row in y}) > 40


def test_unreadable_file_names_the_keras_that_wrote_it(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "k3.h5"
    _as_newer_keras(SHARED, bad, "3.6.0")
    with h5py.File(bad, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"][1]["class_name"] = "FancyNewLayer"
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(StqError, match=r"written by Keras 3\.6\.0.*stq reads .*2\.13-2\.21"):
        frontend.load_keras_model(bad)
    out = tmp_path / "new" / "model"
    assert main(["convert", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Keras 3.6.0" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "new").exists()  # no empty output directory left behind


def test_flatten_before_the_input_quantizer(tmp_path: Path, digits_data) -> None:
    model = randomized("flatten_first")
    g = frontend.convert_model(model, name="mlp")
    assert g.tensors[g.input].shape == (8, 8, 1)  # the input keeps the model's input shape
    x = np.concatenate([digits_data.x_train[:300], digits_data.x_test])
    explain_differences(g, model, x)
    k = _pre_softmax(model).predict(x, verbose=0)
    xq = reference.quantize_input(g, x)
    y = reference.predict(g, xq)
    yr = reference.dequantize_output(g, y)
    assert float(np.mean(yr.argmax(1) == k.argmax(1))) >= 0.995
    assert len({row.tobytes() for row in y}) > 100  # outputs vary across inputs
    h5 = tmp_path / "mlp.h5"
    model.save(h5)
    convert(h5, tmp_path / "out")
    host_y, host_top = HostModel(g, tmp_path / "out" / "c", tmp_path / "host").predict(xq[:200])
    np.testing.assert_array_equal(host_y, y[:200])
