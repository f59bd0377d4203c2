"""Fixture generator: tiny full-int8 TFLite models made with the TFLite converter from Keras
models, covering every op the TFLite frontend supports, plus models it must refuse (float,
int16 activations, an unsupported op). The .tflite files are checked in beside this module
(tests/tflite/*.tflite); regenerate them with

    PYTHONPATH=. .venv/bin/python tests/tflite/make_models.py

Models are untrained, but batch-norm statistics and biases are randomised (fixed seeds) so that
activations vary across inputs. Conversion: Optimize.DEFAULT, a representative dataset of
random normal inputs, TFLITE_BUILTINS_INT8, int8 input and output (one float-I/O variant keeps
QUANTIZE / DEQUANTIZE at the edges). Adapted from the bit-exactness study of issue 15.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

HERE = Path(__file__).resolve().parent
L = tf.keras.layers


def _randomize(model: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            n = gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n).astype(np.float32),
                               rng.normal(0, 0.5, n).astype(np.float32),
                               rng.normal(0, 0.3, n).astype(np.float32),
                               rng.uniform(0.2, 2.0, n).astype(np.float32)])
        elif isinstance(layer, L.Conv2D | L.DepthwiseConv2D | L.Dense) and layer.use_bias:
            w = layer.get_weights()
            w[-1] = rng.normal(0, 0.3, w[-1].shape).astype(np.float32)
            layer.set_weights(w)


def _convert(model: Any, in_shape: tuple[int, ...], seed: int, n_rep: int = 32,
             int8_io: bool = True) -> bytes:
    rng = np.random.default_rng(seed + 1000)
    rep = rng.normal(0, 1, (n_rep, 1) + tuple(in_shape)).astype(np.float32)

    def rep_ds():
        for r in rep:
            yield [r]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep_ds
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


# ---------------------------------------------------------------------------
def m_dw1_maxpool_dense_softmax() -> tuple[Any, tuple[int, ...]]:
    """CONV(ReLU6) -> DEPTHWISE dm=1 (ReLU) -> MAX_POOL -> FC -> SOFTMAX"""
    shp = (16, 16, 3)
    x = inp = L.Input(shp, batch_size=1)
    x = L.Conv2D(8, 3, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=1, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(10)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inp, x), shp


def m_dw2_avgpool_gap() -> tuple[Any, tuple[int, ...]]:
    """DEPTHWISE dm=2 stride 2 (ReLU6) -> AVG_POOL -> GAP (MEAN) -> FC -> SOFTMAX"""
    shp = (12, 12, 4)
    x = inp = L.Input(shp, batch_size=1)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(12, 1)(x)
    x = L.AveragePooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.ReLU(6.0)(x)            # after MEAN: cannot be fused -> standalone RELU6 (if kept)
    x = L.Dense(6)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inp, x), shp


def m_pad_add_pools() -> tuple[Any, tuple[int, ...]]:
    """ZERO PAD -> two CONV valid; ADD (ReLU); AVG_POOL/MAX_POOL 'same' with edge windows;
    dilated depthwise dm=2; GAP keepdims (4D MEAN) -> standalone RELU -> FC"""
    shp = (15, 15, 3)
    x = inp = L.Input(shp, batch_size=1)
    x = L.ZeroPadding2D(((1, 2), (2, 1)))(x)
    a = L.Conv2D(8, 3, padding="valid")(x)
    a = L.BatchNormalization()(a)
    b = L.Conv2D(8, 3, padding="valid")(x)
    b = L.BatchNormalization()(b)
    x = L.Add()([a, b])
    x = L.ReLU()(x)
    x = L.AveragePooling2D(3, strides=2, padding="same")(x)
    y = L.MaxPooling2D(3, strides=2, padding="same")(x)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, dilation_rate=2, padding="same")(y)
    y = L.BatchNormalization()(y)
    y = L.ReLU(6.0)(y)
    y = L.GlobalAveragePooling2D(keepdims=True)(y)
    y = L.ReLU()(y)               # after MEAN: standalone RELU
    y = L.Flatten()(y)
    y = L.Dense(5)(y)
    return tf.keras.Model(inp, y), shp


def m_conv_stride_softmax4d() -> tuple[Any, tuple[int, ...]]:
    """strided CONV (odd size, SAME) -> per-pixel SOFTMAX over channels (many rows,
    wide input range) + Dense ReLU"""
    shp = (9, 9, 2)
    x = inp = L.Input(shp, batch_size=1)
    x = L.Conv2D(16, 3, strides=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Conv2D(7, 3, padding="same", dilation_rate=1)(x)
    x = L.Softmax(axis=-1)(x)
    x = L.Flatten()(x)
    x = L.Dense(16, activation="relu")(x)
    x = L.Dense(4)(x)
    return tf.keras.Model(inp, x), shp


def m_dense_add_relu6() -> tuple[Any, tuple[int, ...]]:
    """FC -> (FC, FC) -> ADD -> ReLU6 -> FC -> SOFTMAX (vector model)"""
    shp = (20,)
    x = inp = L.Input(shp, batch_size=1)
    x = L.Dense(24, activation="relu")(x)
    a = L.Dense(16)(x)
    b = L.Dense(16)(x)
    x = L.Add()([a, b])
    x = L.ReLU(6.0)(x)
    x = L.Dense(8)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inp, x), shp


MODELS = {
    "dw1_maxpool_dense_softmax": m_dw1_maxpool_dense_softmax,
    "dw2_avgpool_gap": m_dw2_avgpool_gap,
    "pad_add_pools": m_pad_add_pools,
    "conv_stride_softmax4d": m_conv_stride_softmax4d,
    "dense_add_relu6": m_dense_add_relu6,
}


def _tiny() -> tuple[Any, tuple[int, ...]]:
    x = inp = L.Input((6,), batch_size=1)
    x = L.Dense(4, activation="tanh")(x)  # TANH: not supported by the frontend
    return tf.keras.Model(inp, x), (6,)


def _float(model: Any) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _int16(model: Any, shape: tuple[int, ...]) -> bytes:
    rep = np.random.default_rng(7).normal(0, 1, (16, 1) + shape).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r] for r in rep)
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return conv.convert()


def make_all(outdir: Path = HERE) -> dict[str, Path]:
    paths = {}
    for i, (name, fn) in enumerate(MODELS.items()):
        tf.keras.utils.set_random_seed(100 + i)
        model, shp = fn()
        _randomize(model, 200 + i)
        paths[name] = outdir / f"{name}.tflite"
        paths[name].write_bytes(_convert(model, shp, 300 + i))
        if name == "dense_add_relu6":
            paths["dense_add_relu6_float_io"] = outdir / "dense_add_relu6_float_io.tflite"
            paths["dense_add_relu6_float_io"].write_bytes(_convert(model, shp, 304, int8_io=False))
            paths["bad_float"] = outdir / "bad_float.tflite"
            paths["bad_float"].write_bytes(_float(model))
            paths["bad_int16"] = outdir / "bad_int16.tflite"
            paths["bad_int16"].write_bytes(_int16(model, shp))
    tf.keras.utils.set_random_seed(99)
    model, shp = _tiny()
    paths["bad_tanh"] = outdir / "bad_tanh.tflite"
    paths["bad_tanh"].write_bytes(_convert(model, shp, 399))
    return paths


if __name__ == "__main__":
    for k, v in make_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE).items():
        print(k, v, v.stat().st_size, "bytes")
