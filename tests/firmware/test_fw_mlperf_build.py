"""MLPerf runner mode at build time: the model id, the energy build and its timestamp pin, the
board file's [timestamp] field, the rounding of the host mirror of m-results near ties, and
ad01's reconstruction error (on the virtual board, the host build of the same mlperf.c)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from toolchain.errors import StqError
from toolchain.firmware.boards import BOARDS_DIR, load_board, load_board_file
from toolchain.firmware.build import build
from toolchain.firmware.mlperf import ad01_line, default_model_id, results_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlperf_client import RE_RESULTS, RunnerDut, runner_top1  # noqa: E402


def test_default_model_ids() -> None:
    assert default_model_id((32, 32, 3)) == ("ic01", None)
    assert default_model_id((96, 96, 3)) == ("vww01", None)
    assert default_model_id((49, 10, 1)) == ("kws01", None)
    assert default_model_id((640,)) == ("ad01", None)
    mid, note = default_model_id((8, 8, 1))
    assert mid == "ic01" and note is not None and "--mlperf-model" in note


def test_energy_build_pulses_the_pin_and_prints_no_laps(fw_model_outdir: Path,
                                                        tmp_path: Path) -> None:
    board = load_board("nucleo-f446re")
    assert board.timestamp_pin == "PA8"
    fw = build(fw_model_outdir, board, tmp_path / "e", mlperf_model="vww01", mlperf_energy=True)
    header = (tmp_path / "e" / "generated" / "stq_board_config.h").read_text()
    assert '#define STQ_MLPERF_MODEL_ID "vww01"' in header
    assert "#define STQ_MLPERF_ENERGY 1" in header
    assert "#define STQ_TIMESTAMP_PORT 0u /* PA8 */" in header
    assert "#define STQ_TIMESTAMP_PIN 8u" in header
    assert "#define STQ_MLPERF_RAW_BYTES 0u" in header  # 96x96x3 images do not fit 8x8x1
    image = fw.elf.read_bytes()
    assert b"stq_timestamp_pulse" in image and b"m-lap-us-" not in image
    assert b"ulp-mlperf energy]" in image and b"m-model-[vww01]" in image


def test_board_without_timestamp_pin_refuses_an_energy_build(fw_model_outdir: Path,
                                                             tmp_path: Path) -> None:
    src = (BOARDS_DIR / "nucleo-f446re.toml").read_text()
    cut = src[:src.index("[timestamp]")]
    (tmp_path / "nucleo-f446re.toml").write_text(cut)
    board = load_board_file(tmp_path / "nucleo-f446re.toml")
    assert board.timestamp_pin is None
    with pytest.raises(StqError, match=r"--mlperf-energy needs a timestamp pin.*\[timestamp\]"):
        build(fw_model_outdir, board, tmp_path / "b", mlperf_energy=True)
    assert not (tmp_path / "b" / "firmware.elf").exists()
    (tmp_path / "nucleo-f446re.toml").write_text(cut + '[timestamp]\npin = "D7"\n')
    with pytest.raises(StqError, match=r"field 'timestamp.pin' must look like PA9"):
        load_board_file(tmp_path / "nucleo-f446re.toml")


def test_bad_mlperf_model_on_the_command_line(fw_model_outdir: Path, tmp_path: Path,
                                              stq_cmd, capsys) -> None:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("arm-none-eabi-gcc is not installed")
    assert stq_cmd("build", [str(fw_model_outdir), "--board", "netduinoplus2", "-o",
                             str(tmp_path), "--mlperf-model", "ic02"]) == 2
    assert "invalid choice: 'ic02'" in capsys.readouterr().err


@pytest.mark.parametrize("q", [[100, 101, 99], [101, 100, 101], [5, 5, 5], [-128, 127, 0]])
def test_near_ties_keep_the_reference_top1(q: list[int]) -> None:
    """Logits a hair apart (scale 2^-12): round-to-nearest would print equal values and the
    runner would pick the lower index; the top class is rounded up, the others down."""
    for scale in (2.0**-12, 0.125, 4.0):
        m = RE_RESULTS.match(results_line(np.array(q), scale))
        assert m is not None
        vals = [float(v) for v in m.group(1).split(",")]
        assert all(v >= 0 for v in vals) and sum(vals) > 0
        assert runner_top1(vals) == int(np.argmax(q))


def test_ad01_prints_the_reconstruction_error(fw_model_outdir: Path) -> None:
    """ad01 builds print one number, the float32 MSE of the dequantized output against the
    dequantized input, equal to the host mirror (the virtual board: the same mlperf.c)."""
    from toolchain.device.virtual_board import VirtualBoard, build_host_firmware
    from toolchain.ir import artifact
    from toolchain.reference import model as reference
    from toolchain.reference.ops import NP_DTYPE

    g = artifact.load(fw_model_outdir / "model.stqa")
    t = g.tensors[g.input]
    rng = np.random.default_rng(3)
    xs = rng.integers(t.qmin, t.qmax + 1, (4, *t.shape))
    ys = reference.predict(g, xs)
    exe = build_host_firmware(fw_model_outdir, mlperf_model="ad01")
    lines = []
    with VirtualBoard(fw_model_outdir, exe=exe) as vb, RunnerDut(vb.port_url) as dut:
        assert dut.get_profile()["model"] == "ad01"
        for x, y in zip(xs, ys, strict=True):
            dut.load(x.astype(NP_DTYPE[t.dtype]).tobytes())
            r = dut.infer(1, 0)
            lines.append(next(v for v in r.lines if v.startswith("m-results-[")))
            assert lines[-1] == ad01_line(y, x, g.tensors[g.output].scale,
                                          g.input_format["step"])
            assert len(r.results) == 1 and r.results[0] > 0
    assert len(set(lines)) == 4
