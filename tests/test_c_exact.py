"""The generated C, compiled for the host, gives identical integer outputs for every layer as
the NumPy reference, for each converter path and both ternary packings; and it compiles
warning-free for Cortex-M4, M7 and M33."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from probes import randomized

from toolchain.codegen import writer as codegen
from toolchain.device.host_model import HostLibrary, HostModel
from toolchain.firmware.cflags import MODEL_STRICT
from toolchain.frontend import keras as frontend
from toolchain.ir.graph import Graph
from toolchain.memory import lifetimes
from toolchain.reference import model as reference

PROBES = ["cnn", "residual", "depthwise", "dense"]
ARM_CPUS = [["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
            ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
            ["-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=soft"]]


@pytest.fixture(scope="module")
def probe_graphs() -> dict[str, Graph]:
    return {name: frontend.convert_model(randomized(name), name=name) for name in PROBES}


def _with_dense(probe_graphs: dict[str, Graph]) -> dict[str, Graph]:
    """The probes and the random dense layers of tests/test_kernel_shapes.py on an int8, a
    uint8 and a pooled int32 vector (the optimized dense kernel's three input types)."""
    from test_kernel_shapes import _dense_graph

    return {**probe_graphs, **{f"dense{seed}": _dense_graph(seed) for seed in (0, 1, 2)}}


def _inputs(g: Graph, digits: Any, n_random: int = 40) -> np.ndarray:
    t = g.tensors[g.input]
    real = reference.quantize_input(g, digits.x_test[:40])
    rng = np.random.default_rng(1)
    rand = rng.integers(t.qmin, t.qmax + 1, size=(n_random, *t.shape))
    extremes = np.stack([np.full(t.shape, t.qmin), np.full(t.shape, t.qmax)])
    return np.concatenate([real, rand, extremes]).astype(real.dtype)


def _check_every_layer(g: Graph, cdir: Path, xs: np.ndarray, workdir: Path) -> None:
    host = HostModel(g, cdir, workdir)
    per_layer = host.layers(xs)
    for i, x in enumerate(xs):
        env = reference.run(g, x)
        for node in g.nodes:
            np.testing.assert_array_equal(
                per_layer[i][node.output], env[node.output],
                err_msg=f"layer {node.name} ({node.op}) differs on input {i}")
    y, top = host.predict(xs)
    ref = reference.predict(g, xs)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(top, ref.argmax(axis=1))
    # the same C in-process (the host-c oracle): equal to the executable, one call per input
    np.testing.assert_array_equal(HostLibrary(g, cdir, workdir / "lib").predict(xs), ref)


@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("probe", PROBES)
def test_c_matches_reference_every_layer(probe_graphs, digits_data, tmp_path: Path,
                                         probe: str, packing: str) -> None:
    g = probe_graphs[probe]
    g.options["packing"] = packing
    codegen.write(g, tmp_path / "c")
    _check_every_layer(g, tmp_path / "c", _inputs(g, digits_data), tmp_path / "host")


def test_trained_digits_model_every_layer(digits_graph, digits_outdir: Path, digits_data,
                                          tmp_path: Path) -> None:
    """The trained model mixes int8 first/last layers with a ternary middle layer."""
    kinds = [n.attrs.get("weight_kind") for n in digits_graph.nodes if "weight_kind" in n.attrs]
    assert kinds == ["int8", "ternary", "int8"]
    xs = reference.quantize_input(digits_graph, digits_data.x_test)
    _check_every_layer(digits_graph, digits_outdir / "c", xs, tmp_path)


def test_probe_paths_are_covered(probe_graphs) -> None:
    """Each converter path the C check relies on is really present in the probes."""
    seen = {(n.op, n.attrs.get("weight_kind"), len(n.inputs), n.attrs.get("requant"))
            for g in probe_graphs.values() for n in g.nodes}
    ops = {s[0] for s in seen}
    assert ops == {"conv2d", "depthwise_conv2d", "dense", "maxpool", "avgpool", "add"}
    assert ("conv2d", "ternary", 2, "quantized") in seen  # residual add fused into the conv
    assert {s[1] for s in seen} >= {"ternary", "binary", "int8"}
    assert {s[3] for s in seen} >= {"quantized", "exact", "fixed_point"}
    dtypes = {t.dtype for g in probe_graphs.values() for t in g.tensors.values()}
    assert dtypes == {"int8", "uint8", "int32"}


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
@pytest.mark.parametrize("cpu", ARM_CPUS, ids=["m4", "m7", "m33"])
def test_generated_c_is_warning_free_for_cortex_m(probe_graphs, tmp_path: Path,
                                                   cpu: list[str]) -> None:
    for name, g in _with_dense(probe_graphs).items():
        for packing in ("2bit", "base3"):
            g.options["packing"] = packing
            cdir = tmp_path / f"{name}-{packing}"
            codegen.write(g, cdir)
            for src in ("model.c", "weights.c", "kernels.c"):
                proc = subprocess.run(
                    ["arm-none-eabi-gcc", *cpu, *MODEL_STRICT, "-O2", "-c", str(cdir / src),
                     "-o", str(cdir / f"{src}.o")], capture_output=True, text=True)
                assert proc.returncode == 0, f"{name}/{packing}/{src}: {proc.stderr}"


def test_fused_residual_writes_in_place_and_resnet8_arena_is_32k() -> None:
    """The second conv of each ResNet block writes over the residual it adds (read at the same
    index just before), so the MLPerf ResNet-8 needs 32 KB of arena (was 48 KB), the lower
    bound. Correctness with the aliasing is covered by the per-layer checks above."""
    from toolchain.training import zoo

    g = frontend.convert_model(zoo.resnet8("stq"), name="resnet8")
    assert lifetimes.inplace_aliases(g) == {"b1_conv2": "conv1", "b2_conv2": "b2_short",
                                          "b3_conv2": "b3_short"}
    planner = lifetimes.plan_arena(g)
    assert planner.total == planner.lower_bound() == 32 * 1024
    offsets = lifetimes.tensor_offsets(g, planner)
    assert offsets["b1_conv2"] == offsets["conv1"]
    assert offsets["b1_conv1"] != offsets["conv1"]  # the main input is never overwritten


@pytest.mark.parametrize("kernels", ["optimized", "reference"])
def test_generated_c_is_warning_free_with_clang(probe_graphs, tmp_path: Path,
                                                kernels: str) -> None:
    """clang is stricter than gcc about unused static functions in generated code."""
    if shutil.which("clang") is None:
        pytest.fail("clang is not installed (scripts/setup.sh installs it)")
    for name, g in _with_dense(probe_graphs).items():
        for packing in ("2bit", "base3"):
            g.options.update(packing=packing)
            cdir = tmp_path / f"{name}-{packing}"
            codegen.write(g, cdir, kernels=kernels)
            for src in ("model.c", "weights.c", "kernels.c"):
                proc = subprocess.run(
                    ["clang", *MODEL_STRICT, "-O2", "-c", str(cdir / src), "-o",
                     str(cdir / f"{src}.o")],
                    capture_output=True, text=True)
                assert proc.returncode == 0, f"{name}/{packing}/{src}: {proc.stderr}"
    for g in probe_graphs.values():
        g.options.pop("kernels", None)
