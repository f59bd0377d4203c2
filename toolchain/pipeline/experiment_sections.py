"""Sections of the `stq experiment` report beyond the method's table: the budget of every
attack, the L2 curves with the median minimal perturbation, the gradient-masking checks
(toolchain/robustness/masking.py) of every model with their evidence, and the transfer matrix
(toolchain/robustness/transfer.py). Every figure with its n."""

from __future__ import annotations

from typing import Any

L2_ATTACKS = ("cw", "boundary", "zoo")


def _results(s: dict) -> dict[str, Any]:
    return {n: r for n, r in s["attacks"]["results"].items() if not r.get("error")}


def budget_lines(s: dict) -> list[str]:
    """What each attack ran (from the first model's rows: the same config for all)."""
    seen: dict[str, str] = {}
    for res in _results(s).values():
        for r in res.get("rows", []):
            if not r.get("sanity"):
                seen.setdefault(r["title"], r.get("budget") or "-")
    if not seen:
        return []
    conv = s["attack_config"].get("convergence")
    return ["", "## Attack budgets", "",
            *(f"- **{t}**: {b}" for t, b in seen.items()),
            f"- convergence (every attack again at half its budget): "
            f"{'checked, see the masking section' if conv else 'not checked at this budget'}"]


def l2_lines(s: dict) -> list[str]:
    """Robust accuracy of the L2 attacks at every L2 epsilon, and their median minimal L2
    perturbation over the images they broke."""
    l2 = s["attack_config"].get("l2_eps") or []
    out = []
    for name, res in _results(s).items():
        for a in L2_ATTACKS:
            rows = {r["eps"]: r for r in res.get("rows", []) if r["attack"] == a}
            if not rows:
                continue
            own = res.get("l2_eps") or l2  # a .tflite baseline's: on its input range
            accs = [f"{rows[e]['acc']['host']:.2f}" if e in rows else "-" for e in own]
            med = rows.get(None, {}).get("median_min_perturbation")
            found = rows.get(None, {})
            out.append(f"| {name} (n={res['n']}) | {rows[next(iter(rows))]['title']} | "
                       + " | ".join(accs) + f" | {'-' if med is None else f'{med:.3f}'} | "
                       f"{found.get('found', '-')}/{found.get('attackable', '-')} |")
    if not out:
        return []
    scaled = [n for n, r in _results(s).items() if r.get("l2_eps") and r["l2_eps"] != l2]
    note = ([f"{', '.join(scaled)}: a .tflite model on its own input range (pixels 0..255): "
             "its L2 epsilons and perturbations are those above times 255.", ""]
            if scaled else [])
    return ["", "## L2 attacks: robust accuracy vs L2 eps (host)", "", *note,
            "| model | attack | " + " | ".join(f"L2 {e:g}" for e in l2)
            + " | median min. L2 | adversarial found |",
            "|---" * (len(l2) + 4) + "|", *out]


def masking_lines(s: dict) -> list[str]:
    """The Athalye-Carlini-Wagner checklist per model: each check's status and evidence."""
    out = []
    for name, res in _results(s).items():
        m = res.get("masking") or {}
        for c in m.get("checks", []):
            out.append(f"| {name} (n={res['n']}) | {c['title']} | {c['status']} | "
                       f"{'; '.join(c['evidence'])} |")
    if not out:
        return []
    flagged = sorted({n for n, r in _results(s).items() if (r.get("masking") or {})
                      .get("flagged")})
    return ["", "## Gradient-masking checks (Athalye, Carlini & Wagner 2018)", "",
            ("FLAGGED for " + ", ".join(flagged) + ": their figures above may overstate "
             "robustness." if flagged else "No check fired for any model."), "",
            "| model | check | status | evidence |", "|---|---|---|---|", *out]


def transfer_lines(s: dict) -> list[str]:
    tm = s.get("transfer")
    if not tm or not tm.get("models"):
        return []
    k = len(tm["eps"]) - 1
    e = tm["eps"][k]
    models = tm["models"]
    rows = [f"| {src} | " + " | ".join(f"{v:.2f}" for v in tm["acc"][k][i]) + " |"
            for i, src in enumerate(models)]
    return ["", f"## Transfer matrix (PGD, eps {e * 255:.0f}/255, n={tm['n']})", "",
            f"Row: the model whose gradients crafted the inputs; column: the model scored "
            f"(robust accuracy on its {'/'.join(sorted(set(tm.get('scored_on', ['keras']))))} "
            f"host model). The diagonal is the white-box attack. PGD budget: {tm['budget']}. "
            "A .tflite baseline has no Keras gradients of its own here and is left out.",
            "", "| source \\ target | " + " | ".join(models) + " |",
            "|---" * (len(models) + 1) + "|", *rows, "",
            "![transfer matrix](transfer.png)"]
