"""The transfer matrix (``stq attack --transfer``): PGD crafted on the gradients of each source
model, replayed on each target model; entry [source][target] is the target's robust accuracy
(correct on the clean input and on the adversarial one). The diagonal is the white-box attack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.robustness import attacks as A
from toolchain.robustness import oracles
from toolchain.robustness.registry import AttackConfig, get
from toolchain.robustness.scoring import wilson


def matrix(models: list[tuple[str, Any]], cfg: AttackConfig, x: np.ndarray, y: np.ndarray,
           log: Callable[[str], None] = print, scored_on: list[Any] | None = None) -> dict:
    """``models``: (label, Keras model) pairs. Returns labels, eps, acc[eps][source][target]
    and the 95 % interval of each entry. ``scored_on``: the oracle each target is scored on
    (e.g. its bit-exact integer reference; default its Keras model)."""
    targets = scored_on or [oracles.KerasOracle(m, label) for label, m in models]
    clean = [t(x).argmax(1) == y for t in targets]
    acc = np.zeros((len(cfg.eps), len(models), len(models)))
    ci = np.zeros((len(cfg.eps), len(models), len(models), 2))
    for i, (label, m) in enumerate(models):
        clf = A.tf_classifier(m, cfg.clip)
        for k, e in enumerate(cfg.eps):
            adv = A.run("pgd", clf, x, y, cfg, e)
            for j, t in enumerate(targets):
                robust = int(np.sum(clean[j] & (t(adv).argmax(1) == y)))
                acc[k, i, j] = robust / len(x)
                ci[k, i, j] = wilson(robust, len(x))
        log(f"[attack] transfer: PGD from {label} replayed on {len(models)} models")
    return {"models": [label for label, _ in models], "eps": list(cfg.eps), "n": int(len(x)),
            "acc": acc.round(6).tolist(), "ci": ci.round(6).tolist(),
            "budget": get("pgd").describe(cfg),
            "clean": [float(np.mean(c)) for c in clean],
            "scored_on": [getattr(t, "name", "keras") for t in targets]}


def load_models(paths: list[Path]) -> list[tuple[str, Any]]:
    from toolchain.frontend.keras import load_keras_model
    from toolchain.robustness.evaluate import model_label

    labels = [model_label(p) for p in paths]
    if len(set(labels)) != len(labels):
        labels = [Path(p).stem for p in paths]
    return [(label, load_keras_model(p)) for label, p in zip(labels, paths, strict=True)]
