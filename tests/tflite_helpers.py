"""Shared pieces of the TFLite tests: fixture paths, CIFAR inputs, the BUILTIN_REF interpreter."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE / "tflite"
SHARED = HERE.parent.parent / "shared"  # ../shared beside the checkout, as in CI
RESNET = SHARED / "models" / "mlperf_tiny_ic_resnet8_int8.tflite"
CIFAR = SHARED / "data" / "cifar10-subset" / "cifar-10-batches-py" / "test_batch"
KERAS_MADE = ("dw1_maxpool_dense_softmax", "dw2_avgpool_gap", "pad_add_pools",
              "conv_stride_softmax4d", "dense_add_relu6", "dense_add_relu6_float_io")


def cifar(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n CIFAR-10 test images as the MLPerf model's int8 input (pixel - 128), labels."""
    with open(CIFAR, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    x = d[b"data"][:n].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.int16) - 128
    return x.astype(np.int8), np.asarray(d[b"labels"][:n])


def interpreter(path: Path) -> Any:
    import tensorflow as tf

    it = tf.lite.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


def interpreter_outputs(path: Path, xs: np.ndarray) -> np.ndarray:
    """BUILTIN_REF outputs, one row per input (inputs without the batch axis)."""
    it = interpreter(path)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    ys = []
    for x in xs:
        it.set_tensor(i["index"], x[None].astype(i["dtype"]))
        it.invoke()
        ys.append(it.get_tensor(o["index"]).reshape(-1).copy())
    return np.stack(ys)


def int8_inputs(g: Any, n: int, seed: int = 0) -> np.ndarray:
    t = g.tensors[g.input]
    return np.random.default_rng(seed).integers(-128, 128, (n, *t.shape)).astype(np.int8)
