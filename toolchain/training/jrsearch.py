"""Per-layer Jacobian regularization: a small search over per-layer weights on a validation
split (docs/training.md, "Per-layer JR search").

Each candidate is a weight vector over the model's block outputs (ResNet: ``b<i>_act2``;
DS-CNN: ``pw<i>_act``; digits: ``act<i>``), on top of the logits (weight 1). A layer weight
``w`` is applied as ``w * C / D_l`` (C logits, D_l the layer's output size), so every weight is
"per output unit, relative to the logits" and the candidates are comparable across layers.
Every candidate is trained briefly (same seed, same data) with ``stq-jr`` on the training split
minus a held-out validation split, then scored on that validation split by

- clean accuracy,
- FGSM accuracy at a small epsilon (white-box, on the QKeras model), and
- the measured Frobenius norm of the input-logit Jacobian (toolchain/training/jacobian.py).

Rule: among the candidates whose clean validation accuracy is within ``tolerance`` of the best
clean accuracy, take the highest FGSM accuracy; ties go to the lower Jacobian norm, then to the
earlier candidate. The report (JSON + Markdown table) lists every score and the choice.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.fsutil import ensure_writable_dir, write_text
from toolchain.training import datasets, zoo
from toolchain.training.train import TrainConfig, train

BLOCK_RE = (re.compile(r"^b\d+_act2$"), re.compile(r"^pw\d+_act$"), re.compile(r"^act\d+$"))


@dataclass
class Candidate:
    name: str
    weights: dict[str, float]  # block output layer -> relative weight (0: not regularized)


def block_layers(model: Any) -> list[str]:
    """The block outputs JR may regularize, in network order."""
    names = [la.name for la in model.layers]
    for rx in BLOCK_RE:
        hits = [n for n in names if rx.match(n)]
        if hits:
            return hits
    return []


def default_candidates(blocks: list[str], count: int = 4) -> list[Candidate]:
    """Logits only, all blocks equally, early-heavy and late-heavy (the first ``count``)."""
    k = len(blocks)
    cands = [Candidate("logits only", {})]
    if k:
        cands += [Candidate("uniform", {b: 1.0 for b in blocks}),
                  Candidate("early-heavy", {b: 2.0 ** -i for i, b in enumerate(blocks)}),
                  Candidate("late-heavy", {b: 2.0 ** -(k - 1 - i) for i, b in enumerate(blocks)})]
    return cands[:max(1, count)]


def split(ds: datasets.Dataset, fraction: float, seed: int) -> datasets.Dataset:
    """Training split minus a stratification-free random validation part (the new test)."""
    n = len(ds.x_train)
    nval = max(1, int(round(n * fraction)))
    if nval >= n:
        raise StqError(f"validation fraction {fraction} leaves no training data ({n} examples)")
    order = np.random.default_rng(seed).permutation(n)
    va, tr = order[:nval], order[nval:]
    return datasets.Dataset(ds.name, ds.x_train[tr], ds.y_train[tr], ds.x_train[va],
                            ds.y_train[va], ds.classes)


def fgsm(model: Any, x: np.ndarray, y: np.ndarray, eps: float,
         clip: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, Any]:
    """ART's FGSM (L-inf ``eps``) on the model's logits: (adversarial inputs, classifier)."""
    from art.attacks.evasion import FastGradientMethod

    from toolchain.robustness.attacks import tf_classifier

    clf = tf_classifier(model, clip)
    atk = FastGradientMethod(clf, eps=eps, eps_step=eps, batch_size=max(1, min(len(x), 256)))
    return atk.generate(x.astype(np.float32), y=y).astype(np.float32), clf


def fgsm_accuracy(model: Any, x: np.ndarray, y: np.ndarray, eps: float,
                  clip: tuple[float, float] = (0.0, 1.0)) -> float:
    adv, clf = fgsm(model, x, y, eps, clip)
    return float(np.mean(np.argmax(clf.predict(adv), 1) == y))


def choose(rows: list[dict], tolerance: float) -> int:
    """Index of the chosen candidate (the rule in the module docstring)."""
    best_clean = max(r["clean"] for r in rows)
    ok = [i for i, r in enumerate(rows) if r["clean"] >= best_clean - tolerance - 1e-12]
    return min(ok, key=lambda i: (-rows[i]["fgsm"], rows[i]["jacobian_norm"], i))


def search(base: TrainConfig, out: Path, dataset: datasets.Dataset | None = None,
           candidates: list[Candidate] | None = None, val_fraction: float = 0.15,
           eps: float = 0.03, tolerance: float = 0.02, score_limit: int = 200,
           progress: bool = False, log: Any = print) -> dict:
    """Train every candidate, score it on the validation split, choose; writes
    OUT/jr_search.{json,md}. Returns the report (with ``best``: the chosen candidate)."""
    from toolchain.frontend.keras import load_keras_model
    from toolchain.training.jacobian import measured_norm

    out = Path(out)
    ensure_writable_dir(out)
    cfg = replace(base, variant="stq-jr").resolved()
    ds = dataset if dataset is not None else datasets.load(cfg.dataset, cfg.data_dir)
    sp = split(ds, val_fraction, cfg.seed)
    xv, yv = sp.x_test[:score_limit].astype(np.float32), sp.y_test[:score_limit]
    probe = zoo.MODELS[cfg.model]("stq-jr", input_shape=tuple(ds.x_train.shape[1:]),
                                  classes=ds.classes, int8_edges=cfg.int8_edges)
    blocks = block_layers(probe)
    dims = {b: int(np.prod(probe.get_layer(b).output.shape[1:])) for b in blocks}
    cands = candidates if candidates is not None else default_candidates(blocks)
    unknown = sorted({k for c in cands for k in c.weights} - set(dims))
    if unknown:
        raise StqError(f"JR search: no block output layer {', '.join(unknown)} in "
                       f"{cfg.model}; block outputs: {', '.join(blocks)}")
    rows = []
    for i, c in enumerate(cands):
        log(f"[jr-search] candidate {i + 1}/{len(cands)}: {c.name} {c.weights or ''}")
        layers = {b: w * ds.classes / dims[b] for b, w in c.weights.items() if w > 0}
        r = train(replace(cfg, jr_layers=layers), out / f"cand{i}", progress=progress,
                  dataset=sp)
        m = load_keras_model(r.model_path)
        clean = float(np.mean(np.argmax(m.predict(xv, verbose=0), 1) == yv))
        rows.append({"name": c.name, "weights": c.weights, "applied_weights": layers,
                     "model_path": r.model_path, "clean": clean,
                     "fgsm": fgsm_accuracy(m, xv, yv, eps),
                     "jacobian_norm": measured_norm(m, xv[:64]), "train_seconds": r.seconds})
    best = choose(rows, tolerance)
    report = {"model": cfg.model, "dataset": ds.name, "epochs": cfg.epochs,
              "jr_lambda": cfg.jr_lambda, "val_fraction": val_fraction, "n_val": int(len(xv)),
              "n_train": int(len(sp.x_train) if not cfg.limit else min(cfg.limit,
                                                                       len(sp.x_train))),
              "eps": eps, "tolerance": tolerance, "blocks": blocks, "block_dims": dims,
              "rule": ("highest FGSM validation accuracy among candidates within "
                       f"{tolerance:g} of the best clean validation accuracy; ties: lower "
                       "Jacobian norm, then earlier candidate"),
              "candidates": rows, "best": best, "best_candidate": asdict(cands[best]),
              "config": asdict(cfg)}
    write_text(out / "jr_search.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "jr_search.md", table(report))
    return report


def table(r: dict) -> str:
    lines = [f"# Per-layer JR search: {r['model']} on {r['dataset']}", "",
             f"{len(r['candidates'])} candidates, {r['epochs']} epoch(s) each, lambda "
             f"{r['jr_lambda']:g}; scored on a validation split of n = {r['n_val']} "
             f"(FGSM eps {r['eps']:g}).", f"Rule: {r['rule']}.", "",
             "| candidate | weights (" + ", ".join(r["blocks"]) + ") | clean (n) | FGSM (n) "
             "| Jacobian norm | chosen |", "|---|---|---|---|---|---|"]
    for i, c in enumerate(r["candidates"]):
        w = ", ".join(f"{c['weights'].get(b, 0):g}" for b in r["blocks"]) or "-"
        lines.append(f"| {c['name']} | {w} | {c['clean']:.3f} ({r['n_val']}) | "
                     f"{c['fgsm']:.3f} ({r['n_val']}) | {c['jacobian_norm']:.3g} | "
                     f"{'**yes**' if i == r['best'] else ''} |")
    return "\n".join(lines) + "\n"
