"""The gradient-masking diagnostic of one model's attack results."""

from __future__ import annotations

TOLERANCE = 0.1  # accuracy gap that counts as "black-box / transfer beat white-box"


def diagnose(result: dict, tol: float = TOLERANCE) -> dict:
    """Gradient-masking signs for one model: a black-box or transfer attack doing better than
    the white-box ones at the same epsilon, or an L-inf attack whose accuracy rises with
    epsilon (by more than ``max(0.05, 1.5 / n)``)."""
    reasons = []
    rows = [r for r in result["rows"] if r["eps"] is not None]
    for e in result["eps"]:
        at = [r for r in rows if r["eps"] == e]
        wb = [r["acc"]["host"] for r in at if r["kind"] == "white-box"]
        if not wb:
            continue
        for kind in ("black-box", "transfer"):
            other = [r for r in at if r["kind"] == kind]
            if not other:
                continue
            best = min(other, key=lambda r: r["acc"]["host"])
            if best["acc"]["host"] < min(wb) - tol:
                reasons.append(f"eps {e:g}: {kind} {best['attack']} leaves accuracy "
                               f"{best['acc']['host']:.3f}, the best white-box attack "
                               f"{min(wb):.3f}")
    mono = max(0.05, 1.5 / max(1, result["n"]))
    for attack in sorted({r["attack"] for r in rows if r["bounded"]}):
        seq = sorted((r["eps"], r["acc"]["host"]) for r in rows
                     if r["attack"] == attack and r["bounded"])
        for (e0, a0), (e1, a1) in zip(seq, seq[1:], strict=False):
            if a1 > a0 + mono:
                reasons.append(f"{attack}: accuracy rises from {a0:.3f} at eps {e0:g} to "
                               f"{a1:.3f} at eps {e1:g}")
    return {"flagged": bool(reasons), "reasons": reasons, "tolerance": tol,
            "monotonic_tolerance": mono}
