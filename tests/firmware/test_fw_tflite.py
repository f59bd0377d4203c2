"""TFLite int8 models on QEMU netduinoplus2: the MLPerf Tiny ResNet-8 (DSP conv kernels) and
all six Keras-made models (every supported op: depthwise multiplier 1 and 2, dilated depthwise,
AVERAGE/MAX_POOL valid and SAME, MEAN, PAD, ADD, standalone and fused RELU/RELU6, FC, int8
SOFTMAX over a vector and per pixel, QUANTIZE/DEQUANTIZE edges). Every output byte read back
from the device must equal TFLite's BUILTIN_REF interpreter on the same inputs (and the host
reference; tests/test_tflite.py checks the host side on more inputs).

Random graphs (tests/tflite_random.py) check the optimized DEPTHWISE_CONV_2D, FULLY_CONNECTED
and ADD kernels with the DSP instructions. The six models are converted and built once per
session (about 3 s of arm-none-eabi-gcc each)
and run on a few varied inputs each: random int8, plus the extremes -128 and 127."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tflite_helpers import KERAS_MADE, MODELS, RESNET, cifar, int8_inputs, interpreter_outputs
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import build
from toolchain.pipeline.convert import convert
from toolchain.reference import model as reference
from toolchain.validate.run import ValidateConfig, validate

pytestmark = pytest.mark.slow
BOARD = "netduinoplus2"


def _validate(model: Path, xs: np.ndarray, tmp_path: Path) -> dict:
    out = tmp_path / "model"
    convert(model, out)
    np.save(tmp_path / "x.npy", xs)
    return validate(ValidateConfig(BOARD, out, tmp_path / "val", dataset=None,
                                   inputs=tmp_path / "x.npy", progress=False))


def _device_outputs(val_dir: Path) -> np.ndarray:
    rows = [json.loads(line) for line in (val_dir / "results.jsonl").read_text().splitlines()]
    return np.asarray([r["y"] for r in rows])


def test_resnet8_bit_exact_on_qemu(tmp_path: Path) -> None:
    xs, labels = cifar(4)
    s = _validate(RESNET, xs, tmp_path)
    assert s["validated"] == 4 and s["bit_exact"] == 4 and s["mismatches"] == 0
    assert np.array_equal(_device_outputs(tmp_path / "val"), interpreter_outputs(RESNET, xs))
    assert 0 < s["mean_instructions"] < 28.2e6  # Arm CMSIS-NN's figure on this board


@pytest.fixture(scope="session")
def keras_made_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (its directory holding model/ (the `stq convert` OUTDIR), its firmware ELF)."""
    root = tmp_path_factory.mktemp("tflite-keras-made")
    board = load_board(BOARD)
    builds = {}
    for name in KERAS_MADE:
        d = root / name
        convert(MODELS / f"{name}.tflite", d / "model")
        builds[name] = (d, build(d / "model", board, d / "fw").elf)
    return builds


def _inputs(g, real: bool) -> tuple[np.ndarray, np.ndarray]:
    """(interpreter inputs, device int8 inputs): 3 random + all -128 + all 127 (for a float-I/O
    model: real values, quantized by the model's QUANTIZE semantics, far outside its range)."""
    t = g.tensors[g.input]
    if real:
        rng = np.random.default_rng(5)
        r = rng.normal(0, 1.5, (5, *t.shape)).astype(np.float32)
        r[3], r[4] = -1e3, 1e3
        return r, reference.quantize_input(g, r)
    xq = int8_inputs(g, 5, seed=5)
    xq[3], xq[4] = -128, 127
    return xq, xq


@pytest.mark.parametrize("name", KERAS_MADE)
def test_keras_made_model_bit_exact_on_qemu(name: str, keras_made_builds: dict,
                                            tmp_path: Path) -> None:
    d, elf = keras_made_builds[name]
    path = MODELS / f"{name}.tflite"
    g = reference.load_artifact_dir(d / "model")
    tf_in, xq = _inputs(g, bool(g.input_format.get("float_input")))
    assert xq.dtype == np.int8
    np.save(tmp_path / "x.npy", xq)
    s = validate(ValidateConfig(BOARD, d / "model", tmp_path / "val", dataset=None,
                                inputs=tmp_path / "x.npy", progress=False, elf=elf))
    assert s["validated"] == 5 and s["bit_exact"] == 5 and s["mismatches"] == 0
    dev = _device_outputs(tmp_path / "val").astype(np.int8)
    want = interpreter_outputs(path, tf_in)
    if g.output_info["dequantize"]:  # DEQUANTIZE on the host: float32(double(S) * (q - Z))
        o = g.tensors[g.output]
        dev_f = (float(o.scale) * (dev.astype(np.float64) - o.zero_point)).astype(np.float32)
        assert np.array_equal(dev_f.view(np.uint8), want.astype(np.float32).view(np.uint8))
    else:
        assert want.dtype == np.int8 and np.array_equal(dev, want)
    assert len({r.tobytes() for r in dev}) >= 4, dev  # outputs vary across the inputs


@pytest.mark.parametrize("kind, seed", [("fc_add", 0), ("fc_add", 3), ("dw", 1), ("dw", 4)])
def test_fast_kernels_bit_exact_on_qemu(kind: str, seed: int, tmp_path: Path) -> None:
    """The optimized DEPTHWISE_CONV_2D (SMLABB/SMLATT), FULLY_CONNECTED (SMLAD, SXTB16, SADD16)
    and tabulated ADD on the DSP extension equal the NumPy reference on random graphs
    (tests/tflite_random.py; the host side on more of them: tests/test_tflite_kernels.py)."""
    from tests import tflite_random as R
    from toolchain.pipeline.convert import convert_graph

    g = R.fc_add_graph(seed) if kind == "fc_add" else R.dw_graph(seed)
    out = tmp_path / "model"
    convert_graph(g, out)
    src = (out / "c" / "model.c").read_text()
    assert "tfl_fc_i8_fast(" in src
    assert ("tfl_add_i8_fast(" if kind == "fc_add" else "tfl_dwconv2d_i8_fast(") in src
    xq = R.inputs(g, 6, seed)
    np.save(tmp_path / "x.npy", xq)
    s = validate(ValidateConfig(BOARD, out, tmp_path / "val", dataset=None,
                                inputs=tmp_path / "x.npy", progress=False))
    assert s["validated"] == 6 and s["bit_exact"] == 6 and s["mismatches"] == 0
    dev = _device_outputs(tmp_path / "val").astype(np.int8)
    assert np.array_equal(dev, reference.predict(g, xq))
    assert len({r.tobytes() for r in dev}) >= 3


def test_resnet8_builds_for_every_board_and_its_budget_matches_the_elf(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The converted MLPerf ResNet-8 links for every shipped board, and `stq budget --elf`
    verifies each firmware (model hash, exact symbol sizes) and finds it within the board."""
    from toolchain.cli.main import main
    from toolchain.firmware.boards import known_boards

    out = tmp_path / "model"
    convert(RESNET, out)
    boards = known_boards()
    assert len(boards) >= 5
    for name in boards:
        board = load_board(name)
        r = build(out, board, tmp_path / name)
        flash_used, flash_size = r.usage["FLASH"]
        ram_used, ram_size = r.usage["RAM"]
        assert 80_000 < flash_used <= flash_size and 0 < ram_used <= ram_size, name
        code = main(["budget", str(out), "--elf", str(r.elf), "--json"])
        rep = capsys.readouterr()
        assert code == 0, (name, rep.err)
        s = json.loads(rep.out)
        assert s["board"] == name and s["ok"] is True and s["elf"]["board"] == name, name
        assert all(x["predicted"] == x["elf"] for x in s["elf"]["symbols"]), name
