"""`pip install .` works outside the checkout: the wheel holds every subpackage, the templates
and the shipped firmware/ and boards/ folders, and its `stq` converts, builds and runs a model
on QEMU from a directory that is not the checkout, with output bytes equal to the reference."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

import toolchain

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "toolchain", "firmware",
           "boards")


def _reference_bytes(outdir: Path, n: int) -> tuple[list[bytes], list[bytes]]:
    from toolchain.ir import artifact
    from toolchain.reference import model as reference
    from toolchain.training import datasets

    g = artifact.load(outdir / "model.stqa")
    xs = reference.quantize_input(g, datasets.digits().x_test[:n])
    dtype = np.dtype("<i4") if g.tensors[g.output].itemsize == 4 else np.dtype(np.int8)
    ins = [np.ascontiguousarray(x).tobytes() for x in xs]
    outs = [reference.run(g, x)[g.output].reshape(-1).astype(dtype).tobytes() for x in xs]
    return ins, outs


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")  # a copy, so the build leaves nothing in the checkout
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(REPO / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(dist), str(src)], check=True)
    (whl,) = dist.glob("stq-*.whl")
    return whl


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert wheel.name.startswith(f"stq-{toolchain.__version__}-")
    packages = {p.relative_to(REPO).as_posix() for p in (REPO / "toolchain").rglob("*.py")}
    assert packages <= names, sorted(packages - names)
    for name in ("boards", "firmware"):
        shipped = {f"toolchain/_data/{p.relative_to(REPO).as_posix()}"
                   for p in (REPO / name).rglob("*") if p.is_file()}
        assert shipped and shipped <= names, sorted(shipped - names)
    templates = {p.relative_to(REPO).as_posix()
                 for p in (REPO / "toolchain").rglob("templates/**/*") if p.is_file()}
    assert templates and templates <= names


@pytest.mark.slow
def test_installed_wheel_converts_builds_and_runs(wheel: Path, digits_h5: Path,
                                                  tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # the dependencies come from the project's environment (a plain path: its .pth files, and
    # so its editable stq, are not read); stq itself only from the wheel
    (site / "stq-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", str(wheel)], check=True)
    stq = venv / "bin" / "stq"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STQ_BOARDS_DIR")}

    def run(*args: str) -> str:
        proc = subprocess.run([str(stq), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        return proc.stdout

    where = subprocess.run([str(py), "-c", "import toolchain; print(toolchain.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(site))
    assert run("--version").strip() == f"stq {toolchain.__version__}"
    assert "netduinoplus2" in run("boards")
    run("convert", str(digits_h5), "-o", "model")
    run("build", "model", "--board", "netduinoplus2", "-o", "fw")
    inputs, expected = _reference_bytes(work / "model", 12)
    pick = [0, next(i for i in range(1, 12) if expected[i] != expected[0])]
    for i in pick:
        (work / f"x{i}.bin").write_bytes(inputs[i])
        out = run("run", "--board", "netduinoplus2", "--elf", "fw/firmware.elf",
                  "--input", f"x{i}.bin")
        line = next(ln for ln in out.splitlines() if ln.startswith("output: "))
        assert bytes.fromhex(line.split()[1]) == expected[i]
