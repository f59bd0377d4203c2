"""The optimized kernels (*_fast: im2col + SMLAD through ACLE intrinsics on Cortex-M4) give the
NumPy reference's output bytes on QEMU netduinoplus2, for probe models that use every optimized
kernel (ternary and int8 conv, int8 and uint8 inputs, fused residual, padding, strides, 1x1
convs, channel counts not a multiple of 4) and for ResNet-8, on random inputs. The host build
(tests/test_c_exact.py) runs the portable C beside the intrinsics; this runs the ARM path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from probes import randomized

from toolchain.codegen import writer as codegen
from toolchain.device.qemu import QemuBoard
from toolchain.device.text_client import StqDevice
from toolchain.firmware.boards import load_board
from toolchain.firmware.build import build
from toolchain.frontend.keras import convert_model
from toolchain.ir.graph import Graph
from toolchain.pipeline.convert import convert_graph
from toolchain.reference import model as reference
from toolchain.reference.model import NP_DTYPE

pytestmark = pytest.mark.slow
BOARD = "netduinoplus2"


def _random_inputs(g: Graph, n: int, seed: int) -> np.ndarray:
    t = g.tensors[g.input]
    rng = np.random.default_rng(seed)
    xs = rng.integers(t.qmin, t.qmax + 1, size=(n, *t.shape))
    xs[0] = t.qmax  # extremes: the largest sums
    return xs.astype(NP_DTYPE[t.dtype])


def _expected(g: Graph, x: np.ndarray) -> bytes:
    out_t = g.tensors[g.output]
    dt = np.dtype("<i4") if out_t.itemsize == 4 else np.dtype(np.int8)
    return reference.run(g, x)[g.output].reshape(-1).astype(dt).tobytes()


def _check_on_qemu(g: Graph, outdir: Path, build_dir: Path, n: int,
                   xs: np.ndarray | None = None) -> None:
    summary = convert_graph(g, outdir)
    assert summary["kernels"] == "optimized"
    kernels_c = (outdir / "c" / "kernels.c").read_text()
    fast = [n for n in g.nodes if n.op == "conv2d"]
    assert not fast or re.search(r"_fast(u3|u|4)?\(", kernels_c)
    result = build(outdir, load_board(BOARD), build_dir)
    if xs is None:
        xs = _random_inputs(g, n, seed=len(g.nodes))
    with QemuBoard(result.elf, timeout=240) as qemu:
        with StqDevice.open(qemu.port_url, timeout=60) as dev:
            bad = []
            for i, x in enumerate(xs):
                got, _ = dev.infer(np.ascontiguousarray(x).tobytes())
                if got != _expected(g, x):
                    bad.append(i)
            dev.quit()
    assert not bad, f"{g.name}: QEMU output differs from the reference on inputs {bad}"


@pytest.mark.parametrize("probe,packing", [("cnn", "2bit"), ("residual", "2bit"),
                                           ("depthwise", "2bit"), ("depthwise", "base3")])
def test_probe_fast_kernels_bit_exact_on_qemu(tmp_path: Path, probe: str, packing: str) -> None:
    """Depthwise (SMLABB) and base-3 (decoded rows, USADA8) kernels included."""
    g = convert_model(randomized(probe), name=probe)
    g.options["packing"] = packing
    assert any(n.op == "conv2d" for n in g.nodes)
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=6)


def test_random_layers_bit_exact_on_qemu(tmp_path: Path) -> None:
    """Random shapes, strides, paddings and all-+1/-1/0 weights (tests/test_kernel_shapes.py)
    through the ARM (DSP intrinsics and inline assembly) path."""
    from test_kernel_shapes import _graph

    g = _graph(2, "uint8", 12, "2bit")
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=6)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_ternary_conv_layers_bit_exact_on_qemu(tmp_path: Path, seed: int) -> None:
    """Ternary convolutions only (tests/test_kernel_shapes.py _conv_graph: interior rows
    copied by LDM, edges, rows of even and odd byte counts, 2-bit and base-3) through the
    Thumb-2 USADA8 loop."""
    from test_kernel_shapes import _conv_graph

    g = _conv_graph(seed)
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=6)


def test_random_depthwise_layers_bit_exact_on_qemu(tmp_path: Path) -> None:
    """Depthwise only (tests/test_kernel_shapes.py _dw_graph: 3x3 interior and edge pixels,
    strides 1-2, both paddings, ternary and int8 weights) through the SMLABB/SMLATT path."""
    from test_kernel_shapes import _dw_graph

    g = _dw_graph(1)
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=6)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_average_pooling_bit_exact_on_qemu(tmp_path: Path, seed: int) -> None:
    """Average pooling with int16 pair sums (tests/test_kernel_shapes.py _pool_graph: windows
    1x1 to global, strides 1-3, binding clamps; seed 1 adds a window over 256 taps, which keeps
    the reference kernel) through SXTAB16."""
    from test_kernel_shapes import _pool_graph

    g = _pool_graph(seed)
    xs = _random_inputs(g, 6, seed=seed)
    xs[1] = -128  # the most negative sums
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=6, xs=xs)


def test_resnet8_fast_kernels_bit_exact_on_qemu(tmp_path: Path) -> None:
    """ResNet-8 with batch norm calibrated on data (checked non-degenerate: outputs vary, most
    activations of every layer non-zero), on its evaluation images."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from models import calibrated_graph

    g, xs, _ = calibrated_graph("resnet8", n_cal=64, n_eval=3)
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=3, xs=xs)


def test_reference_kernels_stay_selectable(tmp_path: Path) -> None:
    g = convert_model(randomized("residual"), name="residual")
    summary = convert_graph(g, tmp_path / "ref", kernels="reference")
    assert summary["kernels"] == "reference" and summary["scratch_bytes"] == 0
    assert "_fast" not in (tmp_path / "ref" / "c" / "kernels.c").read_text()
    fast = convert_graph(g, tmp_path / "fast", kernels="optimized")
    assert fast["scratch_bytes"] > 0
    # the kernel choice shapes the C only: the integer model and its hash are the same
    assert fast["hash"] == summary["hash"]
    assert (tmp_path / "ref" / "model.stqa").read_bytes() == (
        tmp_path / "fast" / "model.stqa").read_bytes()
    with pytest.raises(Exception, match="kernels 'fastest'"):
        codegen.generate(g, kernels="fastest")


@pytest.mark.parametrize("seed", [0, 3])
def test_random_byte_lane_depthwise_layers_bit_exact_on_qemu(tmp_path: Path, seed: int) -> None:
    """Byte-lane depthwise layers (tests/test_kernel_shapes.py _dwu_graph: ternary weights on
    a 0..X tensor, 3x3 through the Thumb-2 assembly, 1x1 / 5x5 through the C loop, strides
    1-2, both paddings, groups with and without output clamps) on the ARM path."""
    from test_kernel_shapes import _dwu_graph

    g = _dwu_graph(seed)
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=8)


@pytest.mark.parametrize("seed,dtype,c", [(4, "uint8", 3), (7, "int8", 3), (6, "int8", 1)])
def test_random_few_channel_int8_layers_bit_exact_on_qemu(tmp_path: Path, seed: int,
                                                          dtype: str, c: int) -> None:
    """1- and 3-channel int8-weight convs (fast4: contiguous patches, the Thumb-2 loop over
    every output channel with the tie-free 64-bit requantization, a last block of fewer
    pixels) among the random layers of tests/test_kernel_shapes.py, uint8 and int8 inputs."""
    from test_kernel_shapes import _graph

    full = _graph(seed, dtype, c, "2bit")
    node = next(n for n in full.nodes if n.name.startswith("l3_conv2d_int8"))
    g = Graph(f"fast4_{seed}", {"x": full.tensors["x"], node.output: full.tensors[node.output]},
              [node], "x", node.output, full.input_format, {}, {"packing": "2bit"})
    model = codegen.write(g, tmp_path / "c")
    assert [x.kernel.rsplit("_", 1)[1] for x in model.layers] == ["fast4"]
    _check_on_qemu(g, tmp_path / "out", tmp_path / "build", n=8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_fused_residual_layers_bit_exact_on_qemu(tmp_path: Path, seed: int) -> None:
    """Ternary convs with a fused residual add (tests/test_kernel_shapes.py _residual_graph)
    through the Thumb-2 routine of every output channel that reads the residual per pixel:
    each residual layer with the conv that makes its residual (which it overwrites in place)
    as a model of its own, since the board returns the last output alone. ResNet-8's residual
    ratios, random ratios, a saturating uint8 residual, last blocks of fewer than 4 pixels,
    rows of an odd byte count (seed 0: the C loop beside the assembly), base-3 (seed 1) and the
    tie layer's 64-bit path."""
    from test_kernel_shapes import RESIDUALS, _residual_graph

    full = _residual_graph(seed)
    for i, how in enumerate(RESIDUALS):
        prod, node = full.nodes[2 * i:2 * i + 2]
        tensors = {t: full.tensors[t] for t in ("x", prod.output, node.output)}
        g = Graph(f"res{seed}_{how}", tensors, [prod, node], "x", node.output,
                  full.input_format, {}, dict(full.options))
        model = codegen.write(g, tmp_path / how / "c")
        assert model.layers[1].kernel.endswith(("_resi8_fastu", "_resu8_fastu",
                                                "_resi8_fastu3", "_resu8_fastu3"))
        _check_on_qemu(g, tmp_path / how / "out", tmp_path / how / "build", n=6)


@pytest.mark.parametrize("seed", [2, 5, 6, 7])
def test_random_dense_layers_bit_exact_on_qemu(tmp_path: Path, seed: int) -> None:
    """Dense layers with int8 weights (tests/test_kernel_shapes.py _dense_graph: 3, 13, 64 and
    131 values, int8, uint8 and the int32 sums of a global average pooling at DS-CNN's clamp
    and at the int16 limits; 1, 2, 3, 20 and 37 output rows, random and all +127 / -128 / 0
    weights, the tie-free and the 64-bit requantization, saturating outputs) through SXTB16
    and SMLAD, each layer a model of its own (the board returns the last output alone), on
    random inputs and both extremes."""
    from test_kernel_shapes import _dense_graph

    full = _dense_graph(seed)
    pool = [n for n in full.nodes if n.op == "avgpool"]
    for node in full.nodes[len(pool):]:
        tensors = {t: full.tensors[t] for t in ["x", node.output] + [n.output for n in pool]}
        g = Graph(f"dense{seed}_{node.name}", tensors, pool + [node], "x", node.output,
                  full.input_format, {}, dict(full.options))
        model = codegen.write(g, tmp_path / node.name / "c")
        assert model.layers[-1].kernel.endswith("_fast")
        xs = _random_inputs(g, 8, seed=seed)
        xs[1] = g.tensors["x"].qmin
        _check_on_qemu(g, tmp_path / node.name / "out", tmp_path / node.name / "build", n=8,
                       xs=xs)
