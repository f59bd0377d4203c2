"""Frontend coverage: model file formats, and the layer paths each probe must exercise."""

from __future__ import annotations

from pathlib import Path

import pytest
from probes import randomized

from toolchain.frontend import keras as frontend
from toolchain.ir import artifact


def test_h5_keras_and_savedmodel_give_the_same_artifact(digits_keras, tmp_path: Path) -> None:
    digits_keras.save(str(tmp_path / "m.h5"))
    digits_keras.save(str(tmp_path / "m.keras"))
    digits_keras.save(str(tmp_path / "saved"), save_format="tf")
    hashes = {artifact.content_hash(frontend.convert_model(frontend.load_keras_model(p),
                                                           name="digits"))
              for p in (tmp_path / "m.h5", tmp_path / "m.keras", tmp_path / "saved")}
    assert len(hashes) == 1


@pytest.mark.parametrize(("probe", "layer_types"), [
    ("dense", {"QBatchNormalization", "Dropout", "Softmax", "Flatten"}),
    ("depthwise", {"MaxPooling2D", "ZeroPadding2D", "Reshape", "GlobalAveragePooling2D",
                   "QDepthwiseConv2D", "Activation"}),
    ("residual", {"Add", "AveragePooling2D", "GlobalAveragePooling2D"}),
])
def test_probes_contain_the_layers_they_cover(probe: str, layer_types: set[str]) -> None:
    model = randomized(probe)
    assert layer_types <= {type(layer).__name__ for layer in model.layers}
    frontend.convert_model(model)


def test_maxpool_before_the_quantizer_is_moved_after_it() -> None:
    g = frontend.convert_model(randomized("depthwise"))
    ops = [(n.op, n.name) for n in g.nodes]
    i = ops.index(("maxpool", "pool_before_q"))
    assert ops[i - 1][0] == "conv2d" and g.nodes[i - 1].attrs["requant"] == "quantized"
    assert g.nodes[i].attrs["pad"] == [0, 1, 0, 1]  # TensorFlow 'same': pad after


def test_qbatchnorm_quantizers_are_applied() -> None:
    model = randomized("dense")
    qbn = next(la for la in model.layers if type(la).__name__ == "QBatchNormalization")
    assert qbn.gamma_quantizer and qbn.variance_quantizer  # QKeras' po2 defaults
