"""The demo's one report (HTML through toolchain.reports, Markdown, JSON): model, budget,
validation, robustness, timings, each section linking to the detailed report of its stage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from toolchain import reports
from toolchain.fsutil import ensure_writable_dir, write_text
from toolchain.reports import Section, Table

SECTIONS = ("headline", "model", "budget", "validation", "robustness", "timings")
KERAS_LABELS = {"keras_top1_agreement": "top-1 agreement with QKeras",
                "keras_accuracy": "QKeras top-1 accuracy",
                "l2r": "relative L2 error of the logits vs QKeras",
                "mae": "mean absolute error of the logits vs QKeras",
                "cosine": "cosine similarity of the logits vs QKeras"}


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if v > 1.0 else f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _acc(v: float | None, n: int | None) -> str:
    return "-" if v is None else f"{v:.3f} (n={n})"


def attack_text(a: dict | None) -> str:
    """'0.700 (n=10) [0.40, 0.89], quick budget' for a headline attack figure."""
    if a is None or a.get("acc") is None:
        return "-"
    lo, hi = a["ci"]
    conv = "" if a.get("converged") is not False else ", not converged"
    return f"{a['acc']:.3f} (n={a['n']}) [{lo:.2f}, {hi:.2f}], {a['budget']} budget{conv}"


def _rel(path: str | Path, base: Path) -> str:
    """A link from the report folder ``base`` to ``path``."""
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def tables(s: dict[str, Any]) -> dict[str, list[Table]]:
    h = s["headline"]
    t: dict[str, list[Table]] = {}
    t["headline"] = [Table(["figure", "value"], [
        ["QKeras test accuracy (STQ+JR)", _acc(h["qkeras_accuracy"], h.get("qkeras_n"))],
        ["device top-1 accuracy", _acc(h["device_accuracy"], h.get("device_n"))],
        ["host/device bit-exact", h["bit_exact"]],
        ["model footprint / budget", f"{_num(h['footprint_bytes'])} / "
                                     f"{_num(h['budget_bytes'])} B"],
        ["accuracy under PGD, eps 0.1 (device)", attack_text(h["pgd_0.1_device"])],
        ["accuracy under Square, eps 0.1 (device oracle)", attack_text(h["square_0.1_device"])],
        ["instructions per inference", _num(h["instructions_per_inference"])]],
        numeric_from=99)]
    t["model"] = [Table(["layer", "op", "weights", "output", "dtype", "flash B"], [
        [x["name"], x["op"], x["weights"] or "-", "x".join(map(str, x["output"])), x["dtype"],
         _num(x["flash_bytes"])] for x in s["convert"]["layers"]], numeric_from=5)]
    rows = [[board, c["what"], _num(c["used"]), _num(c["limit"]), "ok" if c["ok"] else "OVER"]
            for board, bj in s["budget"]["boards"].items() for c in bj["checks"]]
    t["budget"] = [Table(["board", "check", "used B", "limit B", "verdict"], rows,
                         numeric_from=2)]
    v = s["validate"]
    n = v["validated"]
    vrows = [["inputs validated", _num(n)],
             ["bit-exact vs host reference", f"{v['bit_exact']}/{n}"],
             ["top-1 agreement vs reference", _acc(v["top1_agreement"], n)],
             ["device top-1 accuracy", _acc(v.get("device_accuracy"), n)]]
    vrows += [[KERAS_LABELS.get(k, k), _acc(x, n) if k in ("keras_top1_agreement",
                                                            "keras_accuracy") else f"{x:.4g}"]
              for k, x in v.get("keras", {}).items()]
    t["validation"] = [Table(["figure", "value"], vrows, numeric_from=99)]
    from toolchain.reports import robustness as robustness_report

    rt = robustness_report.tables(s["attacks"]["results"])
    t["robustness"] = [rt[k] for k in ("accuracy", "convergence", "masking", "device")]
    for k, title in (("accuracy", "Robust accuracy"), ("convergence", "Convergence"),
                     ("masking", "Gradient-masking checks"), ("device", "Host vs device")):
        rt[k].title, rt[k].id = title, None
    t["timings"] = [Table(["stage", "seconds", "cache"], [
        [k, f"{x:.1f}", "reused" if s["reused"].get(k) else "ran"]
        for k, x in s["timings"].items()])]
    return t


def sections(s: dict[str, Any], out: Path, figures: bool = True) -> list[Section]:
    from toolchain.reports import figures as rfig

    t = tables(s)
    links = {"budget": [p for p in s["budget"]["files"] if p.endswith(".html")],
             "validation": s["validate"]["files"],
             "robustness": [p for p in s["attacks"]["files"] if p.endswith(".html")]}
    res = s["attacks"]["results"]
    out_secs = []
    for sec in SECTIONS:
        x = Section(sec.capitalize(), sec)
        for tab in t[sec]:
            x.add("table", tab)
        if sec == "robustness":
            x.add("note", f"Attacks at the {', '.join(sorted({r['budget'] for r in res}))} "
                  f"budget on {res[-1]['n']} images (a quick look, not a converged "
                  "evaluation: see `stq attack --budget standard`).")
        if figures and sec == "budget":
            for board, bj in s["budget"]["boards"].items():
                x.add("figure", {"png": Path(bj["chart"]).read_bytes(),
                                 "alt": f"budget {board}", "caption": board})
        if figures and sec == "robustness":
            x.add("figure", {"png": rfig.accuracy_png(res), "alt": "accuracy vs epsilon"})
        for link in links.get(sec, []):
            name = f"{Path(link).parent.name}/{Path(link).name}"
            x.add("link", (_rel(link, out), f"detailed report: {name}"))
        out_secs.append(x)
    return out_secs


def _title(s: dict[str, Any]) -> str:
    return f"stq demo: digits STQ+JR on {s['config']['board']}"


def markdown(s: dict[str, Any], out: Path) -> str:
    return reports.markdown(_title(s), sections(s, out, figures=False))


def html_page(s: dict[str, Any], out: Path) -> str:
    return reports.page(_title(s), sections(s, out))


def write(out: Path, s: dict[str, Any]) -> dict[str, Path]:
    out = Path(out)
    ensure_writable_dir(out)
    paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json"}
    write_text(paths["json"], json.dumps(s, indent=1, default=str))
    write_text(paths["md"], markdown(s, out))
    write_text(paths["html"], html_page(s, out))
    return paths
