"""Non-degenerate checks: the benchmark models get batch-norm statistics calibrated on data, and
the check that guards every benchmark fails on a model whose activations are all zero or the
same for every input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_c_exact import _check_every_layer
from test_kernel_shapes import _graph

from toolchain.errors import StqError
from toolchain.training.calibrate import activity, check_non_degenerate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _inputs(g, n: int = 6) -> np.ndarray:
    t = g.tensors[g.input]
    rng = np.random.default_rng(0)
    return rng.integers(t.qmin, t.qmax + 1, size=(n, *t.shape)).astype(np.uint8)


def test_check_fails_on_all_zero_and_constant_outputs() -> None:
    g = _graph(1, "uint8", 8, "2bit")
    xs = _inputs(g)
    for n in g.nodes:  # every output 0: the degenerate untrained case
        n.arrays["mult"][:] = 0
        n.arrays["offset"][:] = 0
    with pytest.raises(StqError, match="same for all"):
        check_non_degenerate(g, xs)
    last = g.nodes[-1]  # a varying output, but one layer mostly zero
    w = last.arrays["weights"]
    last.arrays["weights"] = np.random.default_rng(1).integers(-1, 2, w.shape).astype(np.int8)
    last.arrays["mult"][:] = 1 << 28
    last.arrays["offset"][:] = 1 << 33
    g.nodes[0].arrays["offset"][:] = 0
    with pytest.raises(StqError, match="non-zero activations"):
        check_non_degenerate(g, xs)
    assert activity(g, xs)[g.nodes[0].name]["nonzero"] == 0.0


@pytest.mark.slow
def test_calibrated_dscnn_is_non_degenerate_and_bit_exact(tmp_path: Path) -> None:
    """The DS-CNN with calibrated batch norm: outputs vary, every layer is mostly non-zero
    (the untrained one was all zero from its second depthwise layer on), and the generated C
    with the optimized kernels (depthwise, 1x1, first conv) matches every layer."""
    from models import calibrated_graph

    from toolchain.codegen import writer as codegen

    g, xs, _ = calibrated_graph("dscnn", n_cal=64, n_eval=4)
    act = check_non_degenerate(g, xs)
    assert min(v["nonzero"] for v in act.values()) > 0.5
    model = codegen.write(g, tmp_path / "c")
    fast = {x.name for x in model.layers if x.kernel != x.ref_kernel}
    assert {n.name for n in g.nodes if n.op == "depthwise_conv2d"} <= fast
    _check_every_layer(g, tmp_path / "c", xs, tmp_path / "h")
