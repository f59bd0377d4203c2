"""Jacobian regularization: the random-projection estimate is unbiased (its mean over many
projections equals the exact Frobenius norm), per-layer terms work, and training with it lowers
the measured Jacobian norm of the digits model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from toolchain.training import jacobian


def _tiny() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.layers.Input((5,))
    h = tf.keras.layers.Dense(7, activation="tanh", name="hidden")(inp)
    out = tf.keras.layers.Dense(3, name="out")(h)
    return tf.keras.Model(inp, [out, h])


def test_estimate_is_unbiased_against_the_exact_norm() -> None:
    model = _tiny()
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 5)).astype("float32"))
    exact_out = float(jacobian.exact_frobenius_sq(lambda v: model(v)[0], x))
    exact_hidden = float(jacobian.exact_frobenius_sq(lambda v: model(v)[1], x))
    ests = []
    for _ in range(400):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            outs = model(x)
        ests.append(float(jacobian.projection_estimate(tape, outs, x, [1.0, 0.5], 2)))
    mean, sem = float(np.mean(ests)), float(np.std(ests) / np.sqrt(len(ests)))
    expected = exact_out + 0.5 * exact_hidden
    assert abs(mean - expected) < 4 * sem + 1e-3 * expected, (mean, sem, expected)
    assert np.std(ests) > 0  # it is an estimate, not the exact value in disguise


def test_exact_norm_matches_a_linear_map() -> None:
    w = np.array([[1.0, 2.0], [0.0, -3.0], [4.0, 0.5]], dtype=np.float32)  # 3 in -> 2 out
    x = tf.constant(np.ones((2, 3), dtype=np.float32))
    got = float(jacobian.exact_frobenius_sq(lambda v: tf.matmul(v, w), x))
    assert got == pytest.approx(float(np.sum(w**2)))


@pytest.mark.slow
def test_jr_training_lowers_the_jacobian_norm(digits_keras, digits_data, tmp_path) -> None:
    from toolchain.frontend.keras import load_keras_model
    from toolchain.training.train import TrainConfig, train

    r = train(TrainConfig(variant="stq-jr"), tmp_path, progress=False)
    jr_model = load_keras_model(r.model_path)
    x = digits_data.x_test
    plain = jacobian.measured_norm(digits_keras, x)
    with_jr = jacobian.measured_norm(jr_model, x)
    assert with_jr < 0.7 * plain, (with_jr, plain)
    assert r.test_accuracy >= 0.95
