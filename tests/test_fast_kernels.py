"""Host checks of the optimized kernels beside tests/test_c_exact.py (which runs the default,
optimized kernels): the reference kernels stay selectable and exact, the optimized ones are
really chosen, and the stq_t2_pairs table decodes the 2-bit packing of docs/semantics.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from probes import randomized
from test_c_exact import _check_every_layer, _inputs

from toolchain.codegen import selection, tables
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
    g.options.update(packing="2bit")
    model = codegen.write(g, tmp_path / "c", kernels=kernels)
    text = model.files["kernels.c"]
    assert bool(re.search(r"_fastu?\(", text)) == (kernels == "optimized")
    assert model.kernels == kernels
    assert any(x.kernel != x.ref_kernel for x in model.layers) == (kernels == "optimized")
    _check_every_layer(g, tmp_path / "c", _inputs(g, digits_data, n_random=20), tmp_path / "h")


def _op(layer: codegen.Layer) -> str:
    return {"depthwise_conv2d": "dwconv2d", "dense": "dense"}.get(layer.op, "conv2d")


@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("probe", ["residual", "depthwise", "cnn", "shapes", "dwu"])
def test_scratch_sizes_come_from_the_c_buffer_size_functions(probe: str, packing: str,
                                                            tmp_path: Path) -> None:
    """The converter's scratch sizes (selection.fast_buffer_bytes, which size the static
    scratch) equal what the C *_get_buffer_size() functions return for every optimized layer
    (conv fast/fast4/fastu/fastu3, depthwise fast/fastu)."""
    if probe == "shapes":  # random layers on a 3-channel input (conv fast4, fastu, fastu3)
        from test_kernel_shapes import _graph

        g = _graph(4, "uint8", 3, packing)
    elif probe == "dwu":  # byte-lane depthwise layers on a 0..X tensor
        from test_kernel_shapes import _dwu_graph

        g = _dwu_graph(2)
    else:
        g = frontend.convert_model(randomized(probe), name=probe)
    g.options["packing"] = packing
    model = codegen.write(g, tmp_path / "c")
    fast = [x for x in model.layers if x.kernel != x.ref_kernel and x.op != "avgpool"]
    assert fast, "the probe has no optimized layer"
    assert all(selection.fast_buffer_bytes(x.p, "fast", x.op) == 0 for x in model.layers
               if x.op == "avgpool")  # the int16-pair average pooling needs no scratch
    calls = "\n".join(
        f'    printf("%zu\\n", stq_{_op(x)}_{x.kernel.rsplit("_", 1)[1]}_get_buffer_size('
        f"&{x.params}));" for x in fast)
    externs = "\n".join(f"extern const stq_layer_params_t {x.params};" for x in fast)
    main = tmp_path / "sizes.c"
    main.write_text(f'#include <stdio.h>\n#include "kernels.h"\n{externs}\n'
                    f"int main(void)\n{{\n{calls}\n    return 0;\n}}\n")
    exe = tmp_path / "sizes"
    c = tmp_path / "c"
    subprocess.run(["gcc", "-std=c99", "-O1", f"-I{c}", str(main), str(c / "kernels.c"),
                    str(c / "weights.c"), "-o", str(exe)], check=True)
    got = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True,
                                          check=True).stdout.split()]
    want = [selection.fast_buffer_bytes(x.p, x.kernel.rsplit("_", 1)[1], x.op) for x in fast]
    assert got == want
    assert model.scratch_bytes == max(want)


def test_t2_pairs_decode_the_2bit_packing() -> None:
    table = tables.t2_pairs()
    for w in [(0, 0, 0, 0), (1, -1, 0, 1), (-1, -1, -1, -1), (0, 1, -1, 0)]:
        b = int(pack(np.array(w), "2bit")[0])
        v = int(table[b][len("UINT64_C(0x"):-1], 16)
        lanes = [(v >> (16 * i)) & 0xFFFF for i in range(4)]
        got = [lane - 0x10000 if lane & 0x8000 else lane for lane in lanes]
        assert got == [w[0], w[2], w[1], w[3]]
