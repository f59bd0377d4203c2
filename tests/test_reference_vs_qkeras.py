"""The NumPy reference agrees with the QKeras model itself (model.predict), and every
difference is explained.

QKeras applies the bias and batch norm in float32 and its quantizers round the float32 result
half to even; the artifact folds them into one exact 64-bit fixed-point requantization
(docs/semantics.md). Where the exact value is an x.5 tie (common with power-of-two batch-norm
parameters, e.g. QBatchNormalization), float32 noise decides which way QKeras rounds, so that
element moves by exactly one step, and the change can propagate to later layers. The check
below finds, for every image, the first layer whose output differs from QKeras (its inputs are
still identical) and asserts that each differing element there is one step away and an exact
tie in the integer arithmetic. Nothing else may differ."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from probes import randomized

from toolchain.frontend import keras as frontend
from toolchain.ir.graph import Graph
from toolchain.reference import model as reference
from toolchain.reference import ops

TIE = 1e-4  # |frac - 0.5| below this (in output steps) is a rounding tie


def _pre_softmax(model: Any) -> Any:
    import tensorflow as tf

    last = model.layers[-1]
    if type(last).__name__ in ("Softmax", "Activation"):
        return tf.keras.Model(model.input, last.input)
    return model


def explain_differences(g: Graph, model: Any, x: np.ndarray) -> dict[str, int]:
    """Assert every divergence from QKeras is a rounding tie; return the counts."""
    import tensorflow as tf

    mapped = [n for n in g.nodes if "keras_output" in n.attrs]
    outs = [model.get_layer(n.attrs["keras_output"]).output for n in mapped]
    keras = tf.keras.Model(model.input, outs).predict(x, verbose=0)
    keras = keras if isinstance(keras, list) else [keras]
    xq = reference.quantize_input(g, x)
    counts = {"images": len(x), "images_differing": 0, "tie_elements": 0}
    for i in range(len(x)):
        env = reference.run(g, xq[i])
        for node, k in zip(mapped, keras, strict=True):
            t = g.tensors[node.output]
            kq = k[i].reshape(t.shape) / t.scale
            ours = env[node.output].astype(np.float64)
            tol = 1e-3 if t.dtype != "int32" else 1e-6 * (np.abs(kq).max() + 1.0)
            diff = np.abs(ours - kq) > tol
            if not diff.any():
                continue
            counts["images_differing"] += 1
            where = f"image {i}, layer {node.name} ({node.op})"
            assert t.dtype != "int32", f"{where}: fixed-point output differs beyond float32"
            np.testing.assert_allclose(np.abs(ours - kq)[diff], 1.0, atol=1e-3,
                                       err_msg=f"{where}: differs by more than one step")
            src = node
            if node.op == "maxpool":  # moved after its quantizer: look at the producer
                src = next(n for n in g.nodes if n.output == node.inputs[0])
            r = ops.pre_rounding(g, src, env)
            frac = np.abs(r - np.floor(r) - 0.5)
            if src is node:
                assert (frac[diff] < TIE).all(), f"{where}: a differing value is not a tie"
                counts["tie_elements"] += int(diff.sum())
            else:
                assert (frac < TIE).any(), f"{where}: no tie in the pooled layer's input"
                counts["tie_elements"] += 1
            break  # later layers read different inputs: consequences of this tie
    return counts


def test_trained_digits_top1_and_one_step(digits_keras, digits_graph, digits_data) -> None:
    x = digits_data.x_test
    k = _pre_softmax(digits_keras).predict(x, verbose=0)
    y = reference.dequantize_output(
        digits_graph, reference.predict(digits_graph, reference.quantize_input(digits_graph, x)))
    agree = float(np.mean(y.argmax(1) == k.argmax(1)))
    assert agree >= 0.999, f"top-1 agreement {agree:.4f}"
    step = digits_graph.tensors[digits_graph.output].scale
    assert (np.abs(y - k) / step).max() <= 1.0 + 1e-6
    explain_differences(digits_graph, digits_keras, x)


def test_trained_digits_accuracy_matches_qkeras(digits_trained, digits_graph, digits_data):
    xq = reference.quantize_input(digits_graph, digits_data.x_test)
    acc = float(np.mean(reference.predict(digits_graph, xq).argmax(1) == digits_data.y_test))
    assert acc >= 0.95
    assert abs(acc - digits_trained.test_accuracy) <= 1.0 / len(xq) + 1e-9


@pytest.mark.parametrize("probe", ["cnn", "residual", "depthwise", "dense"])
def test_probe_models_agree_and_differences_are_ties(probe: str, digits_data) -> None:
    model = randomized(probe)
    g = frontend.convert_model(model, name=probe)
    x = np.concatenate([digits_data.x_train, digits_data.x_test])
    counts = explain_differences(g, model, x)
    k = _pre_softmax(model).predict(x, verbose=0).reshape(len(x), -1)
    y = reference.dequantize_output(g, reference.predict(g, reference.quantize_input(g, x)))
    agree = float(np.mean(y.argmax(1) == k.argmax(1)))
    # random (untrained) weights and batch-norm statistics: many near-equal logits, so a tie
    # upstream can flip a few top-1s; every divergence was checked to be a tie above
    assert agree >= 0.995, f"{probe}: top-1 agreement {agree:.4f} ({counts})"
    print(probe, counts, f"top-1 agreement {agree:.4f}")


def test_reference_matmuls_run_on_one_blas_thread_and_from_threads(digits_graph,
                                                                    digits_data) -> None:
    """The reference's BLAS matmuls use one OpenBLAS thread (its pool was seen to hang in a
    process with board threads and QEMU children), and two Python threads running the
    reference at once both finish with the single-thread answer."""
    import threading

    from threadpoolctl import threadpool_info

    xq = reference.quantize_input(digits_graph, digits_data.x_test[:64])
    want = reference.predict(digits_graph, xq)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    assert blas and all(i["num_threads"] == 1 for i in blas)
    got: dict[int, list[bool]] = {0: [], 1: []}

    def work(k: int) -> None:
        for j in range(100):
            got[k].append(np.array_equal(reference.predict(digits_graph, xq[j % 8:]),
                                         want[j % 8:]))

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "reference hung in a thread"
    assert got[0] == got[1] == [True] * 100
