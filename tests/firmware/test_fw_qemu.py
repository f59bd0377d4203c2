"""The firmware on QEMU netduinoplus2 (real qemu-system-arm, real pyserial): it boots, answers
over the UART, runs the digits model bit-exactly against the host reference, costs the same on
every run, reports faults, and QEMU never outlives its context manager."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from toolchain.device.qemu import QemuBoard
from toolchain.device.text_client import StqDevice
from toolchain.errors import StqError
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import build

pytestmark = pytest.mark.slow
BOARD = "netduinoplus2"
N_IMAGES = 60


def _define(model_h: str, name: str) -> str:
    m = re.search(rf"#define {name}\s+(.+)", model_h)
    assert m, name
    return m.group(1).strip().strip('"').rstrip("u").strip("()")


def test_boots_and_answers_hello(fw_build, fw_model_outdir: Path) -> None:
    result = fw_build(BOARD)
    model_h = (result.build_dir / "model" / "model.h").read_text()
    with QemuBoard(result.elf, timeout=120) as qemu:
        with StqDevice.open(qemu.port_url) as dev:
            info = dev.hello()
            assert info.board == BOARD and info.build == result.build_id
            assert info.hash == _define(model_h, "STQ_MODEL_HASH")
            assert info.input_bytes == int(_define(model_h, "STQ_INPUT_BYTES"))
            assert info.output_bytes == int(_define(model_h, "STQ_OUTPUT_BYTES"))
            assert info.arena_bytes == int(_define(model_h, "STQ_ARENA_BYTES"))
            assert info.counter == "systick"
            # resynchronises after junk on the line
            dev.port.write(b"xyz")
            assert dev.sync().hash == info.hash
            dev.quit()
        assert qemu.wait(20) == 0


def _digits_inputs_and_reference(outdir: Path, n: int) -> tuple[list[bytes], list[bytes]]:
    """Integer digits test inputs and the host reference's output bytes (toolchain.reference)."""
    from toolchain.ir import artifact
    from toolchain.reference import model as reference
    from toolchain.training import datasets

    g = artifact.load(outdir / "model.stqa")
    x_int = reference.quantize_input(g, datasets.digits().x_test[:n])
    out_t = g.tensors[g.output]
    out_dtype = np.dtype("<i4") if out_t.itemsize == 4 else np.dtype(np.int8)
    inputs, expected = [], []
    for x in x_int:
        inputs.append(np.ascontiguousarray(x).tobytes())
        expected.append(reference.run(g, x)[g.output].reshape(-1).astype(out_dtype).tobytes())
    return inputs, expected


def test_digits_bit_exact_on_qemu(fw_model_outdir: Path, fw_build) -> None:
    # Needs the real converted digits model (digits_outdir of tests/conftest.py): its artifact
    # runs through the host reference, its C sources on the emulated STM32F405.
    outdir = fw_model_outdir
    if not (outdir / "model.stqa").is_file():
        pytest.fail(f"no converted digits artifact {outdir / 'model.stqa'}")
    inputs, expected = _digits_inputs_and_reference(outdir, N_IMAGES)
    assert len(inputs) >= 50
    with QemuBoard(fw_build(BOARD).elf, timeout=240) as qemu:
        with StqDevice.open(qemu.port_url, timeout=60) as dev:
            assert dev.info is not None and dev.info.input_bytes == len(inputs[0])
            mismatches = []
            for i, (x, want) in enumerate(zip(inputs, expected, strict=True)):
                got, cost = dev.infer(x)
                assert cost.instructions and cost.instructions > 0
                if got != want:
                    mismatches.append(f"image {i}: device {got.hex()} != reference {want.hex()}")
            dev.quit()
    assert not mismatches, "\n".join(mismatches[:10])


def _one_cost(elf: Path, x: bytes) -> tuple[int, int | None, list[tuple[str, int, int | None]]]:
    with QemuBoard(elf, timeout=120) as qemu:
        with StqDevice.open(qemu.port_url) as dev:
            _, cost = dev.infer(x)
            layers = [(c.name, c.ticks, c.instructions) for c in dev.profile()]
            dev.quit()
    return cost.ticks, cost.instructions, layers


def test_cost_is_identical_on_three_qemu_runs(fw_build) -> None:
    elf = fw_build(BOARD).elf
    info_bytes = int(_define((elf.parent / "model" / "model.h").read_text(), "STQ_INPUT_BYTES"))
    x = bytes((i * 37 + 11) % 17 for i in range(info_bytes))
    runs = [_one_cost(elf, x) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    ticks, instructions, layers = runs[0]
    assert ticks > 0 and instructions is not None
    # SysTick at 168 MHz under -icount shift=0 (1 ns per instruction): ~5.95 instructions/tick
    assert 5.5 < instructions / ticks < 6.5
    assert len(layers) >= 1 and all(li is not None and li > 0 for _, _, li in layers)


def test_fault_is_reported_and_exits_qemu(fw_model_outdir: Path, tmp_path: Path) -> None:
    result = build(
        fw_model_outdir, load_board(BOARD), tmp_path / "fault", extra_cflags="-DSTQ_FW_FAULT_TEST=1"
    )
    with QemuBoard(result.elf, timeout=60) as qemu:
        with StqDevice.open(qemu.port_url) as dev:
            dev.port.write(b"F")
            with pytest.raises(StqError, match=r"device fault: FAULT hardfault .*pc=0x080"):
                while True:  # the report starts on a new line
                    dev._read_line("the fault report")
        assert qemu.wait(20) == 3


def test_qemu_is_killed_when_the_block_raises(fw_build) -> None:
    with pytest.raises(RuntimeError):
        with QemuBoard(fw_build(BOARD).elf, timeout=60) as qemu:
            assert qemu.proc is not None
            pgid = qemu.proc.pid
            raise RuntimeError("boom")
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_qemu_wall_time_limit(fw_build) -> None:
    with QemuBoard(fw_build(BOARD).elf, timeout=2) as qemu:
        assert qemu.wait(30) == 124  # coreutils timeout's code: QEMU was killed at the limit


def test_stq_run_command(fw_build, tmp_path: Path, stq_cmd, capsys) -> None:
    elf = fw_build(BOARD).elf
    n = int(_define((elf.parent / "model" / "model.h").read_text(), "STQ_INPUT_BYTES"))
    x = tmp_path / "x.bin"
    x.write_bytes(bytes(n))
    argv = ["--board", BOARD, "--elf", str(elf), "--input", str(x), "--profile", "--timeout", "60"]
    assert stq_cmd("run", argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"cost: \d+ ticks, \d+ instructions", out), out
    assert re.search(r"output: [0-9a-f]+", out), out
    assert stq_cmd("run", ["--board", "nucleo-f446re", "--elf", str(elf)]) == 2
    assert "is not emulated" in capsys.readouterr().err
