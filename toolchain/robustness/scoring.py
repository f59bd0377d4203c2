"""Scoring of adversarial inputs: accuracy per attack and epsilon in the attack's own norm
(L-inf attacks at L-inf epsilons, L2 attacks at L2 epsilons), each with its n and a Wilson 95 %
interval, on the host model, the Keras model and the device; the convergence check (the attack
at half its budget against the full budget, which takes per image the stronger of both runs)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from toolchain.robustness import oracles
from toolchain.robustness.registry import CONVERGED, AttackConfig, get

Z95 = 1.959964


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95 % by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (0.0 if k == 0 else max(0.0, mid - half), 1.0 if k == n else min(1.0, mid + half))


def tolerance(n: int) -> float:
    """The convergence tolerance: CONVERGED, or one image when n is small."""
    return max(CONVERGED, 1.0 / max(1, n))


def _robust_acc(ok: np.ndarray, y: np.ndarray, pred: np.ndarray | None, size: np.ndarray,
                eps: float | None) -> float | None:
    """Accuracy where a misclassified input counts only if its perturbation ``size`` is within
    ``eps`` (None: every input counts); None without predictions."""
    if pred is None:
        return None
    within = np.ones(len(y), bool) if eps is None else size <= eps + 1e-6
    return float(np.mean(ok & ~((pred != y) & within)))


def converged(half: float, run: float, combined: float, n: int) -> bool:
    """Doubling the budget changed accuracy by at most the tolerance: the full-budget run alone
    against the half-budget run (a noisy search that swings between runs is not converged),
    and the worst case of both against the half run (the larger budget found few new breaks)."""
    tol = tolerance(n) + 1e-9
    return abs(run - half) <= tol and abs(combined - half) <= tol


def _worst_case(full: tuple, half: tuple, y: np.ndarray) -> tuple:
    """Per image, the stronger of the full- and the half-budget run of one attack (as
    AutoAttack keeps the worst case over its attacks): the half run's input where it is
    misclassified on the host and the full run's is not, or is with a larger perturbation.
    So the full-budget figure can only be at or below the half-budget one, and a noisy search
    (HopSkipJump's, Boundary's random walk) does not make doubling look like a gain in
    robustness. Both runs were scored on every oracle; the chosen input keeps its predictions
    and its host/device comparison. Runs are (input, L-inf, L2, size, host, Keras and device
    top-1, per-image host/device mismatch)."""
    f_bad, h_bad = full[4] != y, half[4] != y
    take = h_bad & (~f_bad | (half[3] < full[3]))
    return tuple(None if f is None or h is None else
                 np.where(take.reshape((-1,) + (1,) * (np.ndim(f) - 1)), h, f)
                 for f, h in zip(full, half, strict=True))


def _closed_series(full: list[dict], runs: dict[tuple[str, bool], tuple], y: np.ndarray
                   ) -> dict[str, tuple]:
    """Per full-budget job: (half-budget run or None, full-budget run alone, full budget (worst
    case of both), that before the closure over epsilons or None), each as
    (input, L-inf, L2, size, host, Keras, device top-1, mismatch). Closure over epsilons: an
    adversarial a bounded attack found within a smaller epsilon is within every larger one, so
    for each bounded attack run at several epsilons every series takes, per image, the
    stronger of its own run and the figure shown at the next smaller epsilon (robust accuracy
    can only fall as epsilon grows; a smaller epsilon that did not converge does not make this
    one look unconverged)."""
    def sized(r: tuple) -> tuple:
        xa, linf, l2, ph, pk, pd, bad, norm = r
        return (xa, linf, l2, l2 if norm == "l2" else linf, ph, pk, pd, bad)

    out: dict[str, tuple] = {}
    groups: dict[tuple, list[dict]] = {}
    for job in full:
        h = runs.get((job["key"], True))
        alone = sized(runs[(job["key"], False)])
        half = None if h is None else sized(h)
        # the full budget includes the half run: worst case
        out[job["key"]] = (half, alone, alone if half is None else _worst_case(alone, half, y),
                           None)
        if job["eps"] is not None and not job.get("sanity") and get(job["base"]).bounded:
            groups.setdefault((job["attack"], job["kind"], get(job["base"]).norm),
                              []).append(job)
    for members in groups.values():
        prev: tuple | None = None  # the figure shown at the next smaller epsilon
        for job in sorted(members, key=lambda j: j["eps"]):
            own = out[job["key"]][:3]
            # every series against the same figure of the smaller epsilons, so the convergence
            # verdict at this epsilon tests this epsilon's budget only
            closed = tuple(r if r is None or prev is None else _worst_case(r, prev, y)
                           for r in own)
            out[job["key"]] = (*closed, own[2])
            prev = closed[2]
    return out


def l2_ball_on_grid(xa: np.ndarray, x0: np.ndarray, eps: float, step: float) -> np.ndarray:
    """``xa`` (on the input grid of step ``step``, as ``x0``) moved into the L2 ball of radius
    ``eps`` around ``x0`` on that grid: a perturbation larger than ``eps`` is scaled to ``eps``
    and each pixel's step count rounded toward zero, so no pixel moves further than before (the
    result stays in the clip range) and the norm is at most ``eps`` exactly."""
    n = len(x0)
    d = np.rint((xa - x0).reshape(n, -1).astype(np.float64) / step)
    norm = np.sqrt((d ** 2).sum(1)) * step
    over = norm > eps * (1 + 1e-9)
    if over.any():
        d[over] = np.trunc(d[over] * (eps / norm[over])[:, None])
        xa = np.where(over.reshape((-1,) + (1,) * (xa.ndim - 1)),
                      (x0.reshape(n, -1) + d * step).reshape(x0.shape).astype(np.float32), xa)
    return xa


def score(label: str, g: Any, host: oracles.Oracle, keras_o: oracles.Oracle,
          device: oracles.Oracle | None, x: np.ndarray, y: np.ndarray,
          jobs: list[dict], cfg: AttackConfig) -> dict:
    """Accuracy of every finished job (``key``, ``attack``, ``eps``, ``adv``, ``half`` ...);
    bounded attacks are projected onto the epsilon ball (of their norm) on the input grid."""
    step = float(g.input_format["step"]) if g is not None else None
    zp = int(g.input_format.get("zero_point", 0)) if g is not None else 0  # TFLite inputs
    n = len(x)
    mismatches = 0

    def run_all(xe: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                         np.ndarray | None]:
        """Host, Keras and device top-1, and per image whether device and host differ."""
        nonlocal mismatches
        hl = host(xe)
        dev, bad = None, None
        if device is not None:
            dl = device(xe)
            bad = ~np.all(dl == hl, axis=1)
            mismatches += int(bad.sum())
            dev = dl.argmax(1)
        return hl.argmax(1), keras_o(xe).argmax(1), dev, bad

    def grid(a: np.ndarray) -> np.ndarray:
        if g is None:
            return a
        q = oracles.ReferenceOracle(g).quantize(a).reshape(a.shape).astype(np.float64)
        return ((q - zp) * step).astype(np.float32)

    x0 = grid(x)
    ph, pk, pd, bad = run_all(x0)
    eq = None if bad is None else not bad.any()
    ok = ph == y

    clean_k = int(ok.sum())
    clean = {"host": clean_k / n, "keras": float(np.mean(pk == y)),
             "device": None if pd is None else float(np.mean(pd == y)), "host_device_equal": eq,
             "n": n, "ci": wilson(clean_k, n)}
    # every run projected onto its ball and scored: (input, L-inf, L2, size, host, Keras and
    # device top-1, per-image host/device mismatch)
    runs: dict[tuple[str, bool], tuple] = {}
    for job in jobs:
        spec = get(job["base"])
        eps = job["eps"]
        xa = grid(job["adv"])
        if eps is not None and step is not None:  # project onto the ball on the input grid
            if spec.norm == "l2":
                xa = l2_ball_on_grid(xa, x0, eps, step)
            else:
                k = math.floor(eps / step + 1e-6) * step
                xa = np.clip(xa, x0 - k, x0 + k)
        delta = (xa - x0).reshape(n, -1)
        linf, l2 = np.abs(delta).max(1), np.sqrt((delta ** 2).sum(1))
        ph, pk, pd, bad = run_all(xa)
        runs[(job["key"], job["half"])] = (xa, linf, l2, ph, pk, pd, bad, spec.norm)
    full = [j for j in jobs if not j["half"]]
    series = _closed_series(full, runs, y)
    rows = []
    for job in full:
        spec = get(job["base"])
        eps = job["eps"]
        half_run, alone, run, own = series[job["key"]]
        xa, linf, l2, size, ph, pk, pd, bad = run
        eq = None if bad is None else not bad.any()
        levels = [eps] if eps is not None else [
            *(cfg.l2_eps if spec.norm == "l2" else cfg.eps), None]
        for e in levels:
            # bounded attacks are within their ball by construction (float32 rounding aside)
            lim = None if eps is not None else e
            acc = {w: _robust_acc(ok, y, p, size, lim)
                   for w, p in (("host", ph), ("keras", pk), ("device", pd))}
            robust = int(round(acc["host"] * n))  # type: ignore[operator]
            broken = ok & (ph != y)
            half = None if half_run is None else _robust_acc(ok, y, half_run[4], half_run[3],
                                                             lim)
            run_acc = _robust_acc(ok, y, alone[4], alone[3], lim)
            row = {
                "attack": job["attack"], "title": job.get("title", spec.title),
                "kind": job["kind"], "norm": spec.norm, "eps": e, "bounded": spec.bounded,
                "sanity": job.get("sanity", False), "acc": acc, "n": n, "robust": robust,
                "ci": wilson(robust, n), "budget": job["budget"],
                "queries": job["queries"] if job["kind"] == "black-box" else None,
                "seconds": round(job["seconds"], 3), "budget_exhausted": job["exhausted"],
                "attacked": job["attacked"], "oracle": job["oracle"], "host_device_equal": eq,
                "linf_median": float(np.median(linf)), "l2_median": float(np.median(l2)),
                "found": int(broken.sum()), "attackable": int(ok.sum()),
                "median_min_perturbation": float(np.median(size[broken])) if broken.any()
                else None,
                "half_acc": half, "run_acc": run_acc,
                "converged": None if half is None else
                converged(half, run_acc, acc["host"], n)}  # type: ignore[arg-type]
            own_acc = None if own is None else _robust_acc(ok, y, own[4], own[3], lim)
            if own_acc is not None and own_acc != acc["host"]:
                row["own_eps_acc"] = own_acc  # the smaller epsilons' adversarials broke more
            rows.append(row)
    return {"model": label, "n": n, "integer": g is not None,
            "device": device.name if device is not None else None, "clean": clean,
            "rows": rows, "eps": list(cfg.eps), "l2_eps": list(cfg.l2_eps),
            "host_device_mismatches": mismatches, "tolerance": tolerance(n)}
