"""The optimized C kernels of the TFLite path (DEPTHWISE_CONV_2D of depth multiplier 1 with
SMLABB/SMLATT, FULLY_CONNECTED with SMLAD, ADD with tabulated input rescalings) equal the NumPy
reference byte for byte, every layer, on random graphs (random sizes, kernels, strides,
dilations, paddings, odd rows and channel or input tails, extreme zero points, weights, shifts
and inputs), compiled with gcc on the host (portable lanes) beside the reference C kernels.
QEMU (the DSP instructions): tests/firmware/test_fw_tflite.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import tflite_random as R
from toolchain.device.host_model import HostModel
from toolchain.pipeline.convert import convert_graph
from toolchain.reference import model as reference

pytestmark = pytest.mark.slow  # about 3 s per graph: two conversions, two gcc builds
CASES = [("fc_add", s) for s in range(4)] + [("dw", s) for s in (0, 1, 3, 4, 5)]
FAST = {"fc_add": "tfl_fc_i8_fast(", "dw": "tfl_dwconv2d_i8_fast("}


@pytest.mark.parametrize("kind, seed", CASES)
def test_fast_kernels_equal_reference_on_random_graphs(kind: str, seed: int,
                                                       tmp_path: Path) -> None:
    g = R.fc_add_graph(seed) if kind == "fc_add" else R.dw_graph(seed)
    xs = R.inputs(g, 12, seed)
    want = reference.predict(g, xs)
    assert len({r.tobytes() for r in want}) >= 3, want  # the outputs vary across inputs
    env = [reference.run(g, x) for x in xs[:3]]
    for kernels in ("reference", "optimized"):
        out = tmp_path / kernels
        convert_graph(g, out, kernels=kernels)
        src = (out / "c" / "model.c").read_text()
        assert (FAST[kind] in src) == (kernels == "optimized")
        hm = HostModel(reference.load_artifact_dir(out), out / "c", tmp_path / f"h-{kernels}")
        y, _ = hm.predict(xs)
        assert np.array_equal(y, want), kernels
        for layers, ref in zip(hm.layers(xs[:3]), env, strict=True):  # every layer
            for name, arr in layers.items():
                assert np.array_equal(arr, ref[name]), (kernels, name)


def test_random_graphs_use_the_tabulated_add() -> None:
    from toolchain.codegen.selection import TFL_ADD_TABLE_MIN

    sizes = [g.tensors[n.output].size for s in range(4) for g in [R.fc_add_graph(s)]
             for n in g.nodes if n.op == "tfl_add"]
    assert any(s >= TFL_ADD_TABLE_MIN for s in sizes) and any(s < TFL_ADD_TABLE_MIN
                                                              for s in sizes), sizes
