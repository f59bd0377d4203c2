"""`stq build --cmake`: the emitted CMake project (CMakeLists.txt + arm-none-eabi toolchain
file) configures and builds with the real cmake and cross-compiler; its image is byte for byte
the Makefile's, and its ELF runs the digits model on QEMU bit-exactly against the reference."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from toolchain.device.qemu import QemuBoard
from toolchain.device.text_client import StqDevice
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import build

pytestmark = pytest.mark.slow


def test_cmake_project_builds_the_same_firmware(fw_model_outdir: Path, tmp_path: Path) -> None:
    from toolchain.ir import artifact
    from toolchain.reference import model as reference
    from toolchain.training import datasets

    assert shutil.which("cmake"), "cmake is needed (scripts/setup.sh installs it)"
    proj = tmp_path / "proj"
    made = build(fw_model_outdir, load_board("netduinoplus2"), proj, cmake=True)
    assert (proj / "CMakeLists.txt").is_file() and (proj / "arm-none-eabi.cmake").is_file()
    cb = tmp_path / "cmake-build"  # out of the source folder, as a user's IDE would
    for cmd in (["cmake", "-S", str(proj), "-B", str(cb)], ["cmake", "--build", str(cb), "-j2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    elf = cb / "firmware.elf"
    assert (cb / "firmware.map").is_file() and (cb / "firmware.hex").is_file()
    assert (cb / "firmware.bin").read_bytes() == made.bin.read_bytes()

    g = artifact.load(fw_model_outdir / "model.stqa")
    xs = reference.quantize_input(g, datasets.digits().x_test[:20])
    dtype = np.dtype("<i4") if g.tensors[g.output].itemsize == 4 else np.dtype(np.int8)
    want = [reference.run(g, x)[g.output].reshape(-1).astype(dtype).tobytes() for x in xs]
    assert len(set(want)) > 5
    with QemuBoard(elf, timeout=120) as qemu:
        with StqDevice.open(qemu.port_url, timeout=60) as dev:
            assert dev.hello().build == made.build_id
            got = [dev.infer(np.ascontiguousarray(x).tobytes())[0] for x in xs]
            dev.quit()
    assert got == want
