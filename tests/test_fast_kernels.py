"""Host checks of the optimized kernels beside tests/test_c_exact.py (which runs the default,
optimized kernels): the reference kernels stay selectable and exact, the optimized ones are
really chosen, and the stq_t2_pairs table decodes the 2-bit packing of docs/semantics.md."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from probes import randomized
from test_c_exact import _check_every_layer, _inputs

from toolchain.codegen import selection
from toolchain.codegen import writer as codegen
from toolchain.frontend import keras as frontend
from toolchain.ir.packing import pack


@pytest.fixture(scope="module")
def residual_graph():
    return frontend.convert_model(randomized("residual"), name="residual")


@pytest.mark.parametrize("kernels", ["reference", "optimized"])
def test_both_kernel_sets_match_reference(residual_graph, digits_data, tmp_path: Path,
                                          kernels: str) -> None:
    g = residual_graph
    g.options.update(packing="2bit", kernels=kernels)
    model = codegen.write(g, tmp_path / "c")
    text = model.files["kernels.c"]
    assert bool(re.search(r"_fastu?\(", text)) == (kernels == "optimized")
    assert model.kernels == kernels
    if kernels == "optimized":
        need = 0
        for n in g.nodes:
            src = g.tensors[n.inputs[0]]
            wk = selection.weight_code(n, "2bit") if "weights" in n.arrays else None
            variant = selection.fast_variant(n, wk, src, "optimized", n.inputs[0] == g.input)
            if variant is not None:
                need = max(need, selection.fast_buffer_bytes(codegen._params(g, n), variant))
        assert model.scratch_bytes == need
    _check_every_layer(g, tmp_path / "c", _inputs(g, digits_data, n_random=20), tmp_path / "h")
    g.options.pop("kernels")


def test_t2_pairs_decode_the_2bit_packing() -> None:
    table = codegen._t2_pairs()
    for w in [(0, 0, 0, 0), (1, -1, 0, 1), (-1, -1, -1, -1), (0, 1, -1, 0)]:
        b = int(pack(np.array(w), "2bit")[0])
        v = int(table[b][len("UINT64_C(0x"):-1], 16)
        lanes = [(v >> (16 * i)) & 0xFFFF for i in range(4)]
        got = [lane - 0x10000 if lane & 0x8000 else lane for lane in lanes]
        assert got == [w[0], w[2], w[1], w[3]]
