"""Every zoo model, in each of its variants, builds and converts with `stq convert` (the float
variant is refused: its kernels are not quantized); the large model lands near the paper's
budget. (Training each one: tests/test_zoo_train.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_zoo_train import _check_conversion

from toolchain.training import zoo


# quanos needs per-layer bit widths from its sensitivity analysis: tests/test_quanos_jrsearch.py
@pytest.mark.parametrize("variant", [v for v in zoo.VARIANTS if v != "quanos"])
@pytest.mark.parametrize("model", sorted(zoo.MODELS))
def test_every_variant_builds_and_converts(model: str, variant: str, tmp_path: Path,
                                           capsys) -> None:
    m = zoo.MODELS[model](variant)
    assert m.name == f"{model}_{variant.replace('-', '_')}"
    m.save(str(tmp_path / "m.h5"))
    _check_conversion(str(tmp_path / "m.h5"), variant, tmp_path / "out", capsys)



def test_large_model_lands_near_the_paper_budget() -> None:
    from toolchain.codegen import writer as codegen
    from toolchain.frontend import keras as frontend

    g = frontend.convert_model(zoo.resnet_large("stq"), name="resnet_large")
    weights = sum(a.nbytes for a in codegen.generate(g).arrays if a.symbol.startswith("stq_w_"))
    assert 380_000 <= weights <= 440_000
