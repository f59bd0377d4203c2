"""Bad input to `stq convert`: non-zero exit, one clear line naming the problem, no traceback,
and no partial outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolchain.cli.main import main
from toolchain.errors import StqError


def _save(model, path: Path) -> Path:
    model.save(str(path))
    return path


def _convert(capsys, model_path: Path, out: Path) -> tuple[int, str]:
    code = main(["convert", str(model_path), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    return code, err


def _assert_clean_failure(code: int, err: str, out: Path, *needles: str) -> None:
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("stq convert: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    assert not (out / "model.stqa").exists() and not (out / "c").exists()
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert leftovers == [], leftovers


def _base(tf, qk):
    inp = tf.keras.layers.Input((8, 8, 1))
    return inp, qk.QActivation("quantized_bits(8,0,0,keep_negative=False)")(inp)


def test_unsupported_layer(tmp_path: Path, capsys) -> None:
    import qkeras as qk
    import tensorflow as tf

    inp, x = _base(tf, qk)
    x = tf.keras.layers.UpSampling2D(name="upsample")(x)
    path = _save(tf.keras.Model(inp, x), tmp_path / "m.h5")
    code, err = _convert(capsys, path, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out", "layer 'upsample'", "UpSampling2D",
                          "supported layer types:", "QConv2D", "QDepthwiseConv2D", "Add")


@pytest.mark.parametrize(("quantizer", "needle"), [
    ("quantized_po2(4)", "kernel quantizer quantized_po2(4"),
    ("quantized_bits(12,0,1)", "has 12 bits; at most 8"),
    ("binary(use_01=True)", "use_01"),
])
def test_kernel_quantizer_we_cannot_export(tmp_path: Path, capsys, quantizer: str,
                                           needle: str) -> None:
    import qkeras as qk
    import tensorflow as tf

    inp, x = _base(tf, qk)
    x = qk.QConv2D(4, 3, kernel_quantizer=quantizer, name="conv_bad")(x)
    x = qk.QActivation("quantized_relu(4,2)")(x)
    path = _save(tf.keras.Model(inp, x), tmp_path / "m.h5")
    code, err = _convert(capsys, path, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out", "layer 'conv_bad'", needle)


def test_float_kernel_is_refused(tmp_path: Path, capsys) -> None:
    import qkeras as qk
    import tensorflow as tf

    inp, x = _base(tf, qk)
    x = tf.keras.layers.Conv2D(4, 3, name="float_conv")(x)
    path = _save(tf.keras.Model(inp, x), tmp_path / "m.h5")
    code, err = _convert(capsys, path, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out", "layer 'float_conv'", "no quantizer")


def test_unsupported_activation_quantizer_setting(tmp_path: Path, capsys) -> None:
    import qkeras as qk
    import tensorflow as tf

    inp, x = _base(tf, qk)
    x = qk.QConv2D(4, 3, kernel_quantizer="ternary()")(x)
    x = qk.QActivation("quantized_relu(4,2,use_sigmoid=1)", name="sig")(x)
    path = _save(tf.keras.Model(inp, x), tmp_path / "m.h5")
    code, err = _convert(capsys, path, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out", "layer 'sig'", "use_sigmoid")


def test_ternary_layer_whose_weights_are_not_ternary() -> None:
    """A ternary kernel quantizer that does not return alpha * {-1, 0, +1} (for example a
    patched or custom subclass) is refused with the layer, the weight and the channel scale."""
    import qkeras as qk
    import tensorflow as tf

    from toolchain.frontend.keras import convert_model

    class ternary(qk.ternary):  # noqa: N801 - keeps QKeras' class name on purpose
        def __call__(self, x):
            q = super().__call__(x)
            return q + 0.3 * tf.cast(tf.abs(q) > 0, tf.float32) * q  # 1.3 * alpha: not ternary

    inp, x = _base(tf, qk)
    conv = qk.QConv2D(4, 3, kernel_quantizer="ternary(alpha=0.5)", name="tern")
    x = qk.QActivation("quantized_relu(4,2)")(conv(x))
    model = tf.keras.Model(inp, x)
    conv.kernel_quantizer_internal = ternary(alpha=0.5)
    with pytest.raises(StqError, match=r"layer 'tern': quantized weights are not ternary .*"
                                       r"is not alpha \* \{-1, 0, \+1\}"):
        convert_model(model)


def test_accumulator_overflow_is_refused(tmp_path: Path, capsys) -> None:
    import qkeras as qk
    import tensorflow as tf

    n = 70_000  # 70000 * 128 * 255 > 2**31
    inp = tf.keras.layers.Input((n,))
    x = qk.QActivation("quantized_relu(8,0)")(inp)
    dense = qk.QDense(1, kernel_quantizer="quantized_bits(8,0,1)", use_bias=False,
                      name="wide")
    model = tf.keras.Model(inp, dense(x))
    dense.set_weights([np.full((n, 1), -1.0, dtype=np.float32)])
    path = _save(model, tmp_path / "m.h5")
    code, err = _convert(capsys, path, tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out", "layer 'wide'", "overflows int32")


def test_missing_and_corrupt_model_files(tmp_path: Path, capsys) -> None:
    code, err = _convert(capsys, tmp_path / "nope.h5", tmp_path / "out")
    _assert_clean_failure(code, err, tmp_path / "out", "nope.h5", "does not exist")
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(os.urandom(4096))
    code, err = _convert(capsys, bad, tmp_path / "out2")
    _assert_clean_failure(code, err, tmp_path / "out2", "cannot load model", "corrupt.h5")


def test_output_directory_that_cannot_be_written(digits_h5: Path, tmp_path: Path,
                                                 capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a directory")
    code, err = _convert(capsys, digits_h5, blocker / "out")
    assert code != 0 and len(err.splitlines()) == 1
    assert "cannot create output directory" in err and str(blocker / "out") in err
    assert blocker.read_text() == "a regular file, not a directory"


def test_real_entry_point_prints_one_line(tmp_path: Path) -> None:
    """The installed `stq` script (not only main()) exits non-zero without a traceback."""
    stq = Path(sys.executable).with_name("stq")
    proc = subprocess.run([str(stq), "convert", str(tmp_path / "missing.h5"), "-o",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [f"stq convert: error: model file {tmp_path / 'missing.h5'} does not exist"]
