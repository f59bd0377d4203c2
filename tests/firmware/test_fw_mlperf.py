"""The MLPerf Tiny runner mode on QEMU over a real pty, spoken to exactly as the official
runner speaks (tests/mlperf_client.py, real pyserial): the model id is the one built in,
m-results is bit-exact with the host mirror of the device softmax (docs/semantics.md), and the
runner's top-1 (normalize by the sum, argmax) equals the host reference's top-1 on every digits
test input and on CIFAR-10 images sent as the raw uint8 dataset files (converted on the device
through the input lookup table)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from toolchain.device.qemu import QemuBoard
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import build
from toolchain.firmware.mlperf import results_line
from toolchain.ir import artifact
from toolchain.reference import model as reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlperf_client import RunnerDut, RunnerError, runner_top1  # noqa: E402

pytestmark = pytest.mark.slow
BOARD = "netduinoplus2"
REPO = Path(__file__).resolve().parents[2]
CIFAR_DIRS = [os.environ.get("STQ_CIFAR10_DIR", ""), REPO.parent / "shared/data/cifar10-subset"]
HELP_FIRST = "ULPMark for tinyML Firmware V0.0.1"


def _open(elf: Path) -> Iterator[RunnerDut]:
    with QemuBoard(elf, BOARD, timeout=300, serial="pty") as qemu:
        assert qemu.port_url.startswith("/dev/pts/")
        with RunnerDut(qemu.port_url) as dut:
            time.sleep(1.0)  # the runner sleeps 2 s after opening the port
            stray = dut.drain(0.3)
            assert not any("m-ready" in line for line in stray), stray  # never unprompted
            yield dut


@pytest.fixture(scope="module")
def digits_elf(fw_model_outdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits model built by `stq build --mlperf-model kws01` for QEMU."""
    from toolchain.cli.main import main

    out = tmp_path_factory.mktemp("mlperf-digits")
    assert main(["build", str(fw_model_outdir), "--board", BOARD, "-o", str(out),
                 "--mlperf-model", "kws01"]) == 0
    return out / "firmware.elf"


@pytest.fixture(scope="module")
def digits_dut(digits_elf: Path) -> Iterator[RunnerDut]:
    yield from _open(digits_elf)


def test_stq_run_serial_pty_wait(digits_elf: Path) -> None:
    """`stq run --serial pty --wait` prints the pty, any serial client can use it, and Ctrl-C
    stops QEMU with exit code 0."""
    cmd = [sys.executable, "-m", "toolchain.cli.main", "run", "--board", BOARD, "--elf",
           str(digits_elf), "--serial", "pty", "--wait"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            # Ctrl-C as in a terminal, even if the suite runs with SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("serial: /dev/pts/"), first
        with RunnerDut(first.split()[1]) as dut:
            time.sleep(1.0)
            dut.drain(0.2)
            assert dut.get_profile()["model"] == "kws01"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_identity_help_timestamp_db_print(digits_dut: RunnerDut, fw_model_outdir: Path) -> None:
    g = artifact.load(fw_model_outdir / "model.stqa")
    name = digits_dut.get_name()
    assert name == f"stq {g.name} {BOARD}"
    prof = digits_dut.get_profile()
    assert prof["model"] == "kws01"  # the id built in, a key of the runner's tests yaml
    assert prof["profile"].startswith(f"stq {g.name} {BOARD} build ")
    assert prof["profile"].endswith(" ulp-mlperf performance")
    lines = digits_dut.send_command("help")
    assert lines[0] == HELP_FIRST and lines[-1] == "m-ready" and len(lines) == 12
    assert "infer N [W=0]: Load input, execute N inferences after W warmup loops" in lines
    laps = [digits_dut.send_command("timestamp") for _ in range(2)]
    assert [len(r) for r in laps] == [2, 2] and laps[0][1] == "m-ready"
    t0, t1 = (int(r[0].removeprefix("m-lap-us-")) for r in laps)
    assert laps[0][0] == f"m-lap-us-{t0}" and t1 > t0
    x = bytes(range(7, 17))
    assert digits_dut.load(x) == ["m-load-done", "m-ready"]
    assert digits_dut.send_command("db print") == [
        "m-buffer-07-08-09-0a-0b-0c-0d-0e", "m-buffer-0f-10", "m-ready"]
    assert digits_dut.send_command("db load 0")[0] == "e-[Command 'db load' must be >0 bytes]"
    assert digits_dut.send_command("db load")[0] == \
        "e-[Command 'db load' requires the # of bytes]"
    too_big = digits_dut.send_command("db load 99999")[0]
    assert too_big.startswith("e-[Supplied buffer size 99999 exceeds maximum of ")
    assert digits_dut.send_command("bogus") == ["e-[Unknown command: bogus]", "m-ready"]


def test_runner_top1_equals_reference_on_every_digits_input(
        digits_dut: RunnerDut, fw_model_outdir: Path, digits_data) -> None:
    g = artifact.load(fw_model_outdir / "model.stqa")
    xq = reference.quantize_input(g, digits_data.x_test)
    ys = reference.predict(g, xq)
    scale = g.tensors[g.output].scale
    assert len({int(v) for v in ys.argmax(1)}) > 5  # the outputs vary across inputs
    wrong = []
    for k, (x, y) in enumerate(zip(xq, ys, strict=True)):
        digits_dut.load(x.tobytes())
        r = digits_dut.infer(1, 0)
        assert r.start_us is not None and r.end_us is not None and r.end_us > r.start_us
        line = next(v for v in r.lines if v.startswith("m-results-["))
        assert line == results_line(y, scale), k  # bit-exact with the host mirror
        if runner_top1(r.results) != int(np.argmax(y)):
            wrong.append(k)
    assert wrong == [], f"{len(wrong)}/{len(xq)} runner top-1 differ from the reference"
    r = digits_dut.infer(3, 2)  # warm-ups, several timed inferences, the runner's parse
    assert r.lines[0] == "m-warmup-start-2" and "m-infer-start-3" in r.lines
    assert r.end_us is not None and r.start_us is not None and r.end_us > r.start_us
    assert runner_top1(r.results) == int(np.argmax(ys[-1]))


def _cifar() -> tuple[np.ndarray, np.ndarray]:
    """uint8 CIFAR-10 (train, test) images of the local subset (STQ_CIFAR10_DIR or
    ../shared/data/cifar10-subset); a clear failure when it is missing."""
    from toolchain.training import datasets

    for d in CIFAR_DIRS:
        if d and Path(d).is_dir():
            ds = datasets.cifar10(d)
            return tuple(np.round(x * 255.0).astype(np.uint8) for x in (ds.x_train[:64],
                                                                         ds.x_test[:5]))
    pytest.fail("the real CIFAR-10 subset is missing: expected ../shared/data/cifar10-subset "
                "beside the checkout (or STQ_CIFAR10_DIR)")


@pytest.fixture(scope="module")
def cifar_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo's int8 ResNet-8 with batch-norm statistics and the classifier calibrated on 64
    CIFAR-10 training images (no training, random weights), so top-1 classes vary."""
    import tensorflow as tf

    from toolchain.frontend.keras import convert_model
    from toolchain.pipeline.convert import convert_graph
    from toolchain.training import zoo

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    m = zoo.resnet8("int8")
    cal = tf.constant(_cifar()[0][:64] / 255.0, tf.float32)
    bns = [la for la in m.layers if isinstance(la, tf.keras.layers.BatchNormalization)]
    for layer in bns:  # one training-mode pass with momentum 0 stores each input's statistics
        c = layer.gamma.shape[0]
        layer.set_weights([np.ones(c), rng.normal(0.5, 0.5, c), np.zeros(c), np.ones(c)])
        layer.momentum = 0.0
    m(cal, training=True)
    dense = m.get_layer("logits")
    f = tf.keras.Model(m.input, dense.input)(cal, training=False).numpy()
    w = rng.normal(0.0, 1.0, dense.get_weights()[0].shape)
    w = w / (f @ w).std(axis=0) * 3.0
    dense.set_weights([w, -(f.mean(0) @ w)])
    out = tmp_path_factory.mktemp("mlperf-resnet8")
    convert_graph(convert_model(m, name="resnet8"), out)
    return out


def test_runner_top1_on_raw_cifar_images(cifar_model: Path, tmp_path: Path) -> None:
    g = artifact.load(cifar_model / "model.stqa")
    assert g.tensors[g.input].dtype == "uint8" and g.tensors[g.output].dtype == "int8"
    fw = build(cifar_model, load_board(BOARD), tmp_path / "fw")  # default id from 32x32x3
    assert fw.mlperf is not None and fw.mlperf.model_id == "ic01"
    assert fw.mlperf.raw_bytes == 3072
    images = _cifar()[1][:5]
    ys = reference.predict(g, reference.quantize_input(g, images / 255.0))
    assert len({int(v) for v in ys.argmax(1)}) >= 3 and len({y.tobytes() for y in ys}) == 5
    scale = g.tensors[g.output].scale
    dut_iter = _open(fw.elf)
    dut = next(dut_iter)
    try:
        assert dut.get_profile()["model"] == "ic01"
        for img, y in zip(images, ys, strict=True):
            assert dut.load(img.tobytes())[0] == "m-load-done"  # the dataset file, 3072 B
            r = dut.infer(1, 0)
            assert next(v for v in r.lines if v.startswith("m-results-[")) == \
                results_line(y, scale)
            assert runner_top1(r.results) == int(np.argmax(y))
        # ic01's performance step, infer 20 5: no 5 s silence (keep-alive lines), ends fine
        r = dut.infer(20, 5)
        assert r.end_us is not None and r.start_us is not None and r.end_us > r.start_us
        assert any(v.startswith("m-infer-progress-") for v in r.lines)
    except RunnerError as exc:
        pytest.fail(str(exc))
    finally:
        dut_iter.close()
