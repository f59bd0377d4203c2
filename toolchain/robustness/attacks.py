"""The attacks (ART 1.20.1), registered in ``toolchain.robustness.registry``.

White-box, on the Keras model (``TensorFlowV2Classifier`` on its pre-softmax logits; gradients
pass through the quantizers' straight-through estimators): ``fgsm``, ``pgd`` (with restarts),
``autoattack`` (APGD-CE, APGD-DLR, Square; Croce & Hein 2020), ``apgd-l2`` (its APGD pair in
the L2 ball), ``pgd-bpda`` (PGD through a copy
of the model whose zero-gradient layers pass the gradient straight through, with EOT averaging)
and ``cw`` (Carlini-Wagner L2). Black-box, on any oracle: ``square`` (L-inf, one image per call),
``boundary``, ``hsj`` (HopSkipJump L2) and ``zoo`` (L2).

Every call is seeded (``seeded``): NumPy's and Python's global generators, and the unseeded
``np.random.RandomState()`` that ART's Boundary and HopSkipJump create per image, so the same
inputs, seed and oracle give the same adversarial bytes on every bit-exact oracle.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from toolchain.robustness.registry import AttackConfig, attack


def quiet_art() -> None:
    logging.getLogger("art").setLevel(logging.ERROR)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed every generator ART draws from, for the duration of one attack call."""
    orig = np.random.RandomState

    class _Seeded(orig):  # type: ignore[misc, valid-type]
        def __init__(self, s: Any = None) -> None:
            super().__init__(seed if s is None else s)

    np.random.seed(seed)
    random.seed(seed)
    np.random.RandomState = _Seeded  # type: ignore[misc]
    try:
        yield
    finally:
        np.random.RandomState = orig  # type: ignore[misc]


def tf_classifier(model: Any, clip: tuple[float, float] = (0.0, 1.0), eot: int = 1) -> Any:
    """ART's TensorFlowV2Classifier on the model's logits, its forward pass in a tf.function
    (averaged over ``eot`` calls: expectation over transformation for random models)."""
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    from toolchain.training.jacobian import pre_softmax

    quiet_art()
    pre = pre_softmax(model)

    def forward(x: Any, training: bool = False) -> Any:
        if eot == 1:
            return pre(x, training=False)
        return tf.add_n([pre(x, training=False) for _ in range(eot)]) / float(eot)

    fn = tf.function(forward, reduce_retracing=True)
    return TensorFlowV2Classifier(
        model=fn, nb_classes=int(pre.output_shape[-1]),
        input_shape=tuple(int(d) for d in model.input_shape[1:]),
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=clip)  # fmt: skip


def bpda_model(model: Any, sample: np.ndarray) -> tuple[Any, list[str]]:
    """BPDA (Athalye et al. 2018): a copy of ``model`` whose shape-preserving layers with a zero
    gradient on ``sample`` (hard rounding, stop_gradient) compute the same forward pass but pass
    the gradient straight through (identity backward). Returns the copy and the layers replaced."""
    import tensorflow as tf

    x = tf.convert_to_tensor(sample.astype(np.float32))
    replaced: list[str] = []

    def zero_grad(layer: Any, inp: Any) -> bool:
        with tf.GradientTape() as tape:
            tape.watch(inp)
            out = layer(inp)
        if out.shape != inp.shape:
            return False
        g = tape.gradient(tf.reduce_sum(out * tf.random.stateless_normal(out.shape, (1, 2))), inp)
        return g is None or float(tf.reduce_max(tf.abs(g))) == 0.0

    def walk(m: Any, inp: Any) -> Any:
        h = inp
        for layer in m.layers:
            if isinstance(layer, tf.keras.layers.InputLayer):
                continue
            if isinstance(layer, tf.keras.Model):
                h = walk(layer, h)
                continue
            if zero_grad(layer, h):
                replaced.append(layer.name)
            h = layer(h)
        return h

    walk(model, x)
    if not replaced:
        return model, []

    def clone(layer: Any) -> Any:
        if layer.name in replaced:
            return tf.keras.layers.Lambda(lambda t, f=layer: t + tf.stop_gradient(f(t) - t),
                                          name=f"bpda_{layer.name}")
        return layer

    return tf.keras.models.clone_model(model, clone_function=clone), replaced


def _n(x: np.ndarray) -> int:
    return max(1, len(x))


@attack("fgsm", "FGSM", "white-box", "linf", True, "",
        lambda c: "one gradient step")
def fgsm(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, eps: float) -> np.ndarray:
    from art.attacks.evasion import FastGradientMethod

    return FastGradientMethod(clf, eps=eps, eps_step=eps, batch_size=_n(x)).generate(x, y=y)


def _pgd(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, eps: float) -> np.ndarray:
    from art.attacks.evasion import ProjectedGradientDescent

    best = x.copy()
    fooled = np.zeros(len(x), bool)
    for r in range(cfg.pgd_restarts):  # restart 0 from x itself, the others at random starts
        atk = ProjectedGradientDescent(clf, eps=eps, eps_step=2.5 * eps / cfg.pgd_iter,
                                       max_iter=cfg.pgd_iter, num_random_init=int(r > 0),
                                       batch_size=_n(x), verbose=False)
        with seeded(cfg.seed + r):
            adv = atk.generate(x, y=y).astype(np.float32)
        now = clf.predict(adv).argmax(1) != y
        take = now & ~fooled
        best[take], fooled = adv[take], fooled | now
        if fooled.all():
            break
    return best


attack("pgd", "PGD", "white-box", "linf", True, "pgd_iter",
       lambda c: f"{c.pgd_iter} steps x {c.pgd_restarts} restarts, step 2.5 eps/steps")(_pgd)
attack("pgd-bpda", "PGD with BPDA/EOT", "white-box", "linf", True, "pgd_iter",
       lambda c: f"{c.pgd_iter} steps x {c.pgd_restarts} restarts through straight-through "
                 f"copies of zero-gradient layers, EOT {c.eot}")(_pgd)


@attack("autoattack", "AutoAttack", "white-box", "linf", True, "apgd_iter",
        lambda c: f"APGD-CE + APGD-DLR {c.apgd_iter} steps each, then Square "
                  f"{c.square_iter} iterations")
def autoattack(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig,
               eps: float) -> np.ndarray:
    """AutoAttack's standard sequence (ART's AutoAttack class needs the ``multiprocess``
    package, so the sequence is run here): each attack on the images still robust."""
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

    n = _n(x)
    seq = [AutoProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=2 * eps,
                                        max_iter=cfg.apgd_iter, nb_random_init=1,
                                        loss_type=loss, batch_size=n, verbose=False)
           for loss in ("cross_entropy", "difference_logits_ratio")]
    seq.append(SquareAttack(clf, norm=np.inf, eps=eps, max_iter=cfg.square_iter, p_init=0.3,
                            nb_restarts=1, batch_size=n, verbose=False))
    adv = x.copy()
    for atk in seq:
        left = np.flatnonzero(clf.predict(adv).argmax(1) == y)
        if not len(left):
            break
        if isinstance(atk, SquareAttack):
            new = atk.generate(x[left], y=np.eye(clf.nb_classes, dtype=np.float32)[y[left]])
        else:
            new = atk.generate(x[left], y=y[left])
        new = np.clip(new, x[left] - eps, x[left] + eps).astype(np.float32)
        hit = clf.predict(new).argmax(1) != y[left]
        adv[left[hit]] = new[hit]
    return adv


@attack("apgd-l2", "APGD L2", "white-box", "l2", True, "apgd_iter",
        lambda c: f"APGD-CE + APGD-DLR {c.apgd_iter} steps each in the L2 ball")
def apgd_l2(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig,
            eps: float) -> np.ndarray:
    """AutoAttack's white-box pair in L2 (Croce & Hein 2020): APGD with the cross-entropy,
    then with the DLR loss on the images still robust, each bounded by an L2 ball of radius
    ``eps`` (the scoring projects the result onto the ball on the input grid)."""
    from art.attacks.evasion import AutoProjectedGradientDescent

    n = _n(x)
    adv = x.copy()
    for loss in ("cross_entropy", "difference_logits_ratio"):
        left = np.flatnonzero(clf.predict(adv).argmax(1) == y)
        if not len(left):
            break
        atk = AutoProjectedGradientDescent(clf, norm=2, eps=eps, eps_step=2 * eps,
                                           max_iter=cfg.apgd_iter, nb_random_init=1,
                                           loss_type=loss, batch_size=n, verbose=False)
        new = atk.generate(x[left], y=y[left]).astype(np.float32)
        hit = clf.predict(new).argmax(1) != y[left]
        adv[left[hit]] = new[hit]
    return adv


@attack("cw", "Carlini-Wagner L2", "white-box", "l2", False, "cw_iter",
        lambda c: f"{c.cw_iter} iterations x {c.cw_search} binary-search steps")
def cw(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, eps: None) -> np.ndarray:
    from art.attacks.evasion import CarliniL2Method

    return CarliniL2Method(clf, learning_rate=cfg.cw_lr, max_iter=cfg.cw_iter,
                           binary_search_steps=cfg.cw_search, initial_const=cfg.cw_const,
                           max_halving=2, max_doubling=2, batch_size=_n(x),
                           verbose=False).generate(x, y=y)


@attack("square", "Square", "black-box", "linf", True, "square_iter",
        lambda c: f"{c.square_iter} iterations"
                  + (f" x {c.square_restarts} restarts" if c.square_restarts > 1 else "")
                  + " per image, one image per call", restarts="square_restarts")
def square(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, eps: float) -> np.ndarray:
    from art.attacks.evasion import SquareAttack

    atk = SquareAttack(clf, norm=np.inf, eps=eps, max_iter=cfg.square_iter, p_init=0.3,
                       nb_restarts=cfg.square_restarts, batch_size=1, verbose=False)
    onehot = np.eye(clf.nb_classes, dtype=np.float32)[y]
    out = x.copy()
    for i in range(len(x)):  # batched Square shares squares across images and is weaker
        with seeded(cfg.seed + i):
            out[i] = atk.generate(x[i:i + 1], y=onehot[i:i + 1])[0]
    return out


@attack("boundary", "Boundary", "black-box", "l2", False, "boundary_iter",
        lambda c: f"{c.boundary_iter} iterations (decisions only)")
def boundary(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, eps: None) -> np.ndarray:
    from art.attacks.evasion import BoundaryAttack

    return BoundaryAttack(clf, targeted=False, max_iter=cfg.boundary_iter, num_trial=10,
                          sample_size=10, init_size=20, batch_size=_n(x),
                          verbose=False).generate(x, y=np.eye(clf.nb_classes)[y])


@attack("hsj", "HopSkipJump L2", "black-box", "l2", False, "hsj_iter",
        lambda c: f"{c.hsj_iter} iterations x {c.hsj_max_eval} evaluations"
                  + (f" x {c.hsj_restarts} restarts (seeds; per image the smallest adversarial)"
                     if c.hsj_restarts > 1 else "") + " (decisions only)",
        restarts="hsj_restarts", per_seed=True)
def hsj(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, eps: None) -> np.ndarray:
    from art.attacks.evasion import HopSkipJump

    return HopSkipJump(clf, targeted=False, norm=2, max_iter=cfg.hsj_iter,
                       max_eval=cfg.hsj_max_eval, init_eval=20, init_size=20, batch_size=_n(x),
                       verbose=False).generate(x, y=np.eye(clf.nb_classes)[y])


@attack("zoo", "ZOO L2", "black-box", "l2", False, "zoo_iter",
        lambda c: f"{c.zoo_iter} iterations, {c.zoo_parallel} coordinates at a time, "
                  f"step {c.zoo_step:g}")
def zoo(clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, eps: None) -> np.ndarray:
    from art.attacks.evasion import ZooAttack

    return ZooAttack(clf, confidence=0.0, targeted=False, learning_rate=0.05,
                     max_iter=cfg.zoo_iter, binary_search_steps=1, initial_const=10.0,
                     abort_early=True, use_resize=False, use_importance=False,
                     nb_parallel=cfg.zoo_parallel, batch_size=1, variable_h=cfg.zoo_step,
                     verbose=False).generate(x, y=np.eye(clf.nb_classes)[y])


def run(name: str, clf: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig,
        eps: float | None = None) -> np.ndarray:
    """Adversarial inputs of attack ``name`` (seeded, clipped to the input range)."""
    from toolchain.robustness.registry import get

    quiet_art()
    x = x.astype(np.float32)
    with seeded(cfg.seed):
        adv = get(name).factory(clf, x, y, cfg, eps)
    if adv is None:
        return x
    return np.clip(np.asarray(adv, dtype=np.float32), *cfg.clip)
