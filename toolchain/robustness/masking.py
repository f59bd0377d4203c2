"""The gradient-masking checks of one model's attack results (Athalye, Carlini & Wagner 2018;
Carlini et al. 2019, "On evaluating adversarial robustness"), each with its evidence.

Each check is "FLAGGED", "ok" or "n/a" (the attacks it needs were not run). A flag means the
figures are not a lower bound on the attack that would really break the model: either the
gradients are masked or an attack is too weak at its budget. Gaps count when they exceed
``tolerance(n) = max(0.05, 0.5 / sqrt(n))`` (about two standard errors of a paired difference);
"reaching 100 %" allows ``max(0.02, 1 / n)``.
"""

from __future__ import annotations

import math

CHECKS = {
    "single-step": "iterative attacks weaker than single-step",
    "black-box": "black-box or transfer attacks stronger than white-box",
    "large-eps": "accuracy not falling toward 0 as epsilon grows",
    "unbounded": "an attack at the whole input range not reaching 100 % success",
    "minimal": "minimal-perturbation attacks failing to find an adversarial",
    "bpda": "BPDA/EOT gradients stronger than the model's own",
}


def tolerance(n: int) -> float:
    return max(0.05, 0.5 / math.sqrt(max(1, n)))


def _fmt(r: dict) -> str:
    return f"{r['acc']['host']:.3f} ({r['robust']}/{r['n']})"


def diagnose(result: dict) -> dict:
    n = result["n"]
    tol, floor = tolerance(n), max(0.02, 1.0 / max(1, n))
    rows = [r for r in result["rows"] if r["eps"] is not None and not r.get("sanity")]
    out: dict[str, tuple[str, list[str]]] = {}

    def at(norm: str, e: float, pred) -> list[dict]:  # noqa: ANN001
        return [r for r in rows if r["norm"] == norm and r["eps"] == e and pred(r)]

    def best(rs: list[dict]) -> dict:
        return min(rs, key=lambda r: r["acc"]["host"])

    def compare(key: str, weak, strong, label: str) -> None:  # noqa: ANN001
        """FLAGGED where the best ``strong`` row beats the best ``weak`` one by > tol."""
        bad, seen, worst = [], False, -math.inf
        for norm, eps in (("linf", result["eps"]), ("l2", result.get("l2_eps", []))):
            for e in eps:
                w, s = at(norm, e, weak), at(norm, e, strong)
                if not w or not s:
                    continue
                seen = True
                bw, bs = best(w), best(s)
                gap = bw["acc"]["host"] - bs["acc"]["host"]
                worst = max(worst, gap)
                if gap > tol:
                    bad.append(f"{norm} eps {e:g}: {bs['title']} leaves {_fmt(bs)}, "
                               f"{bw['title']} {_fmt(bw)}")
        if not seen:
            out[key] = ("n/a", [f"needs {label}"])
        elif bad:
            out[key] = ("FLAGGED", bad)
        else:
            out[key] = ("ok", [f"largest gap {max(worst, 0.0):.3f} <= {tol:.3f}"])

    compare("single-step", lambda r: r["kind"] == "white-box" and r["attack"] != "fgsm",
            lambda r: r["attack"] == "fgsm", "FGSM and an iterative white-box attack")
    compare("black-box", lambda r: r["kind"] == "white-box" and r["attack"] != "pgd-bpda",
            lambda r: r["kind"] in ("black-box", "transfer"),
            "a white-box and a black-box or transfer attack in the same norm")
    compare("bpda", lambda r: r["kind"] == "white-box" and r["attack"] not in ("pgd-bpda",
                                                                                "fgsm"),
            lambda r: r["attack"] == "pgd-bpda", "pgd-bpda and pgd or autoattack")

    bad, ev = [], []
    for attack in sorted({r["attack"] for r in rows if r["bounded"]}):
        seq = sorted((r["eps"], r) for r in rows if r["attack"] == attack and r["bounded"])
        for (e0, r0), (e1, r1) in zip(seq, seq[1:], strict=False):
            # each epsilon's run alone: the scoring closes each figure over the smaller
            # epsilons' adversarials, so a run that breaks fewer images at a larger eps shows
            # only in the runs' own figures
            own0 = r0.get("own_eps_acc", r0["acc"]["host"])
            own1 = r1.get("own_eps_acc", r1["acc"]["host"])
            if own1 > own0 + tol:
                closed = "" if "own_eps_acc" not in r1 else \
                    f" (each run alone; {_fmt(r1)} with the smaller epsilons' adversarials)"
                bad.append(f"{r0['title']}: accuracy rises from {own0:.3f} at eps {e0:g} to "
                           f"{own1:.3f} at eps {e1:g}{closed}")
        if len(seq) > 1:
            (e0, r0), (e1, r1) = seq[0], seq[-1]
            ev.append(f"{r0['title']} {_fmt(r0)} at eps {e0:g} -> {_fmt(r1)} at {e1:g}")
            if r1["acc"]["host"] > floor and r1["acc"]["host"] >= r0["acc"]["host"] - tol:
                bad.append(f"{r0['title']}: flat, {_fmt(r0)} at eps {e0:g} and {_fmt(r1)} at "
                           f"eps {e1:g}")
    out["large-eps"] = ("FLAGGED", bad) if bad else (("ok", ev) if ev else (
        "n/a", ["needs a bounded attack at two or more epsilons"]))

    sanity = [r for r in result["rows"] if r.get("sanity")]
    if not sanity:
        out["unbounded"] = ("n/a", ["needs PGD at the whole input range (--sanity)"])
    else:
        r = sanity[0]
        state = "FLAGGED" if r["acc"]["host"] > floor else "ok"
        out["unbounded"] = (state, [f"{r['title']} (eps {r['eps']:g}) leaves {_fmt(r)}"])

    minimal = [r for r in result["rows"] if not r["bounded"] and r["eps"] is None]
    if not minimal:
        out["minimal"] = ("n/a", ["needs a minimal-perturbation attack (cw, boundary, hsj, zoo)"])
    else:
        ev = [f"{r['title']}: no adversarial for {r['attackable'] - r['found']} of "
              f"{r['attackable']} correctly classified images" for r in minimal]
        failed = [r for r in minimal if r["acc"]["host"] > floor]
        out["minimal"] = ("FLAGGED" if failed else "ok", ev)

    checks = [{"check": k, "title": CHECKS[k], "status": out[k][0], "evidence": out[k][1]}
              for k in CHECKS]
    reasons = [f"{c['title']}: {'; '.join(c['evidence'])}" for c in checks
               if c["status"] == "FLAGGED"]
    return {"flagged": bool(reasons), "checks": checks, "reasons": reasons, "tolerance": tol}
