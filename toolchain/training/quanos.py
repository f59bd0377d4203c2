"""Quanos baseline: adversarial-noise-sensitivity driven hybrid quantization (Panda, Chakraborty
and Roy, "QUANOS: adversarial noise sensitivity driven hybrid quantization of neural
networks", ISLPED 2020). See docs/training.md, "Quanos".

1. On the trained float model, adversarial inputs x' are made with FGSM (or PGD) at ``eps``.
2. The adversarial noise sensitivity of every weight layer l (conv, depthwise conv, dense) is
   ANS_l = mean over images of ||a_l(x') - a_l(x)||_2 / ||a_l(x)||_2, a_l the layer's output.
3. ANS is normalized by its largest value (n_l = ANS_l / max ANS) and mapped to bit widths as
   Quanos does, the more sensitive layers getting the lower precision (quantization then
   suppresses the adversarial noise where it is amplified most):
   n_l >= ``hi`` -> 2 bits (ternary), ``lo`` <= n_l < ``hi`` -> 4 bits, n_l < ``lo`` -> 8 bits.
   With ``keep_edges`` the first and last weight layers stay 8-bit (as in every other variant).
4. The model is rebuilt with those per-layer kernel quantizers (zoo variant ``quanos``: ternary,
   quantized_bits(4) or quantized_bits(8) kernels, 4- or 8-bit activations) and trained with
   QKeras quantization-aware training like the other variants.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.fsutil import write_text

WEIGHT_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense", "QConv2D", "QDepthwiseConv2D", "QDense")
THRESHOLDS = (1 / 3, 2 / 3)  # (lo, hi) on normalized ANS


def weight_layers(model: Any) -> list[str]:
    return [la.name for la in model.layers if type(la).__name__ in WEIGHT_LAYERS]


def adversarial(model: Any, x: np.ndarray, y: np.ndarray, eps: float, attack: str = "fgsm",
                iters: int = 10, clip: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """FGSM or PGD (ART) adversarial inputs on the float model's logits."""
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    from toolchain.robustness.attacks import tf_classifier

    clf = tf_classifier(model, clip)
    bs = max(1, min(len(x), 256))
    if attack == "fgsm":
        atk = FastGradientMethod(clf, eps=eps, eps_step=eps, batch_size=bs)
    elif attack == "pgd":
        atk = ProjectedGradientDescent(clf, eps=eps, eps_step=2.5 * eps / iters, max_iter=iters,
                                       batch_size=bs, verbose=False)
    else:
        raise StqError(f"Quanos ANS attack must be fgsm or pgd, not {attack!r}")
    return atk.generate(x.astype(np.float32), y=y).astype(np.float32)


def sensitivity(model: Any, x: np.ndarray, x_adv: np.ndarray,
                layers: list[str] | None = None) -> dict[str, float]:
    """ANS of every weight layer: mean ||a(x_adv) - a(x)|| / ||a(x)|| over the images."""
    import tensorflow as tf

    layers = layers or weight_layers(model)
    if not layers:
        raise StqError("Quanos: the model has no conv/dense layers to assign bits to")
    probe = tf.keras.Model(model.input, [model.get_layer(n).output for n in layers])
    outs = probe.predict(x, verbose=0)
    advs = probe.predict(x_adv, verbose=0)
    outs, advs = (outs, advs) if len(layers) > 1 else ([outs], [advs])
    ans = {}
    for name, a, b in zip(layers, outs, advs, strict=True):
        a, b = a.reshape(len(x), -1), b.reshape(len(x), -1)
        num = np.linalg.norm(b - a, axis=1)
        den = np.maximum(np.linalg.norm(a, axis=1), 1e-12)
        ans[name] = float(np.mean(num / den))
    return ans


def assign_bits(ans: dict[str, float], thresholds: tuple[float, float] = THRESHOLDS,
                keep_edges: bool = False) -> dict[str, int]:
    """Bit width per layer from ANS (the rule in the module docstring); ``ans`` in network
    order (its first and last keys are the edge layers)."""
    lo, hi = thresholds
    if not 0 <= lo <= hi <= 1:
        raise StqError(f"Quanos thresholds must satisfy 0 <= lo <= hi <= 1, got {thresholds}")
    top = max(ans.values()) if ans else 0.0
    names = list(ans)
    bits = {}
    for name, v in ans.items():
        nv = v / top if top > 0 else 0.0
        bits[name] = 2 if nv >= hi else (4 if nv >= lo else 8)
    if keep_edges and names:
        bits[names[0]] = bits[names[-1]] = 8
    return bits


def analyze(model: Any, x: np.ndarray, y: np.ndarray, eps: float, attack: str = "fgsm",
            thresholds: tuple[float, float] = THRESHOLDS, keep_edges: bool = True,
            out: Path | None = None) -> dict:
    """ANS of the float model and the bit widths; written to OUT/quanos.json when given."""
    x_adv = adversarial(model, x, y, eps, attack)
    ans = sensitivity(model, x, x_adv)
    bits = assign_bits(ans, thresholds, keep_edges)
    top = max(ans.values())
    rep = {"reference": "Panda, Chakraborty, Roy: QUANOS, ISLPED 2020", "attack": attack,
           "eps": eps, "n": int(len(x)), "thresholds": list(thresholds),
           "keep_edges": keep_edges,
           "layers": [{"name": n, "ans": ans[n], "normalized": ans[n] / top if top else 0.0,
                       "bits": bits[n]} for n in ans],
           "bits": bits}
    if out is not None:
        write_text(Path(out) / "quanos.json", json.dumps(rep, indent=2) + "\n")
    return rep
