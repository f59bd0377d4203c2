"""The attacks (ART 1.20.1), each a small function from clean inputs to adversarial inputs.

White-box, on the QKeras model (``TensorFlowV2Classifier`` on its pre-softmax logits; gradients
pass through the quantizers' straight-through estimators): ``fgsm``, ``pgd`` (L-inf) and ``cw``
(Carlini-Wagner L2). Black-box, on any oracle (``toolchain.oracles``): ``square`` (L-inf),
``boundary``, ``hsj`` (HopSkipJump, L2) and ``zoo``. ``fgsm``, ``pgd`` and ``square`` are
bounded (one run per epsilon); the others look for the smallest perturbation they can find
and are scored at each epsilon by the L-inf size of what they found (toolchain.evaluate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from toolchain.errors import StqError

WHITE_BOX = ("fgsm", "pgd", "cw")
BLACK_BOX = ("square", "boundary", "hsj", "zoo")
ATTACKS = WHITE_BOX + BLACK_BOX
BOUNDED = ("fgsm", "pgd", "square")  # L-inf, one run per epsilon
DEFAULT_ATTACKS = ("fgsm", "pgd", "cw", "square", "boundary", "zoo")
NORM = {"fgsm": "linf", "pgd": "linf", "square": "linf", "cw": "l2", "boundary": "l2",
        "hsj": "l2", "zoo": "l2"}


@dataclass
class AttackConfig:
    """Attack parameters; ``for_dataset`` gives the defaults. Digits inputs are in [0, 1] with
    8-bit steps (1/256; the pixels themselves are multiples of 1/16)."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    eps: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    limit: int = 20
    seed: int = 0
    clip: tuple[float, float] = (0.0, 1.0)
    pgd_iter: int = 20
    cw_iter: int = 10
    cw_search: int = 2
    cw_lr: float = 0.05
    cw_const: float = 1.0
    square_iter: int = 100
    boundary_iter: int = 50
    hsj_iter: int = 5
    hsj_max_eval: int = 200
    zoo_iter: int = 20
    zoo_parallel: int = 64
    zoo_step: float = 0.1  # finite-difference step: see docs/robustness.md
    budget: int | None = None  # queries per black-box attack (per epsilon for square)
    chunk: int = 5  # images per black-box call: the unit of resuming and of budget stops
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> AttackConfig:
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise StqError(f"unknown attack(s) {', '.join(bad)}; available: {', '.join(ATTACKS)}")
        if not self.eps or any(e <= 0 for e in self.eps):
            raise StqError("--eps needs one or more positive values")
        if self.limit < 1 or self.chunk < 1:
            raise StqError("--limit and --chunk must be >= 1")
        if self.budget is not None and self.budget < 1:
            raise StqError("--budget must be >= 1")
        self.eps = tuple(sorted(float(e) for e in self.eps))
        return self

    def as_dict(self) -> dict:
        return asdict(self)


DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {},
    # 32x32 colour images in [0, 1] with 8-bit steps: the usual CIFAR epsilons, fewer images
    "cifar10": {"eps": (1 / 255, 2 / 255, 4 / 255, 8 / 255), "limit": 50, "zoo_step": 4 / 255,
                "square_iter": 300, "cw_iter": 20},
    "svhn": {"eps": (1 / 255, 2 / 255, 4 / 255, 8 / 255), "limit": 50, "zoo_step": 4 / 255},
}


def for_dataset(name: str, **overrides: Any) -> AttackConfig:
    base = AttackConfig(**DATASET_DEFAULTS.get(name, {}))
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}).check()


def quiet_art() -> None:
    logging.getLogger("art").setLevel(logging.ERROR)


def tf_classifier(model: Any, clip: tuple[float, float] = (0.0, 1.0)) -> Any:
    """ART's TensorFlowV2Classifier on the model's logits, its forward pass in a tf.function."""
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    from toolchain.training.jacobian import pre_softmax

    quiet_art()
    pre = pre_softmax(model)
    fn = tf.function(lambda x, training=False: pre(x, training=False), reduce_retracing=True)
    return TensorFlowV2Classifier(
        model=fn, nb_classes=int(pre.output_shape[-1]),
        input_shape=tuple(int(d) for d in model.input_shape[1:]),
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=clip)  # fmt: skip


def white_box(name: str, classifier: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig,
              eps: float | None = None) -> np.ndarray:
    """Adversarial inputs from a white-box attack (untargeted; ``eps`` for fgsm and pgd)."""
    from art.attacks.evasion import CarliniL2Method, FastGradientMethod, ProjectedGradientDescent

    quiet_art()
    n = len(x)
    if name == "fgsm":
        atk = FastGradientMethod(classifier, eps=eps, eps_step=eps, batch_size=max(1, n))
    elif name == "pgd":
        atk = ProjectedGradientDescent(classifier, eps=eps, eps_step=2.5 * eps / cfg.pgd_iter,
                                       max_iter=cfg.pgd_iter, batch_size=max(1, n), verbose=False)
    elif name == "cw":
        atk = CarliniL2Method(classifier, learning_rate=cfg.cw_lr, max_iter=cfg.cw_iter,
                              binary_search_steps=cfg.cw_search, initial_const=cfg.cw_const,
                              max_halving=2, max_doubling=2, batch_size=max(1, n), verbose=False)
    else:
        raise StqError(f"{name} is not a white-box attack")
    return atk.generate(x.astype(np.float32), y=y).astype(np.float32)


def black_box(name: str, classifier: Any, x: np.ndarray, y: np.ndarray, cfg: AttackConfig,
              eps: float | None = None) -> np.ndarray:
    """Adversarial inputs from a black-box attack on an ART black-box classifier."""
    from art.attacks.evasion import BoundaryAttack, HopSkipJump, SquareAttack, ZooAttack

    quiet_art()
    np.random.seed(cfg.seed)  # ART's black-box attacks draw from NumPy's global generator
    x = x.astype(np.float32)
    n = len(x)
    if name == "square":
        atk = SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=cfg.square_iter,
                           p_init=0.3, nb_restarts=1, batch_size=max(1, n), verbose=False)
    elif name == "boundary":
        atk = BoundaryAttack(classifier, targeted=False, max_iter=cfg.boundary_iter,
                             num_trial=10, sample_size=10, init_size=20, batch_size=max(1, n),
                             verbose=False)
    elif name == "hsj":
        atk = HopSkipJump(classifier, targeted=False, norm=2, max_iter=cfg.hsj_iter,
                          max_eval=cfg.hsj_max_eval, init_eval=20, init_size=20,
                          batch_size=max(1, n), verbose=False)
    elif name == "zoo":
        atk = ZooAttack(classifier, confidence=0.0, targeted=False, learning_rate=0.05,
                        max_iter=cfg.zoo_iter, binary_search_steps=1, initial_const=10.0,
                        abort_early=True, use_resize=False, use_importance=False,
                        nb_parallel=cfg.zoo_parallel, batch_size=1, variable_h=cfg.zoo_step,
                        verbose=False)
    else:
        raise StqError(f"{name} is not a black-box attack")
    onehot = np.eye(classifier.nb_classes, dtype=np.float32)[y]
    adv = atk.generate(x, y=onehot)
    if adv is None:
        return x
    return np.clip(np.asarray(adv, dtype=np.float32), *cfg.clip)


AttackFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
