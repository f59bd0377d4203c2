"""The demo's one report (HTML, Markdown, JSON): model, budget, validation, robustness,
timings, each section linking to the detailed report of its stage."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from toolchain.fsutil import ensure_writable_dir, write_text

SECTIONS = ("headline", "model", "budget", "validation", "robustness", "timings")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if v <= 1.0 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _rel(path: str | Path, base: Path) -> str:
    """A link from the report folder ``base`` to ``path``."""
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def tables(s: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    h = s["headline"]
    conv = s["convert"]
    t: dict[str, tuple[list[str], list[list[str]]]] = {}
    t["headline"] = (["figure", "value"], [
        ["QKeras test accuracy (STQ+JR)", _fmt(h["qkeras_accuracy"])],
        ["device top-1 accuracy", _fmt(h["device_accuracy"])],
        ["host/device bit-exact", h["bit_exact"]],
        ["model footprint vs budget", f"{_fmt(h['footprint_bytes'])} / "
                                      f"{_fmt(h['budget_bytes'])} B"],
        ["accuracy under PGD, eps 0.1 (device)", _fmt(h["pgd_0.1_device"])],
        ["accuracy under Square, eps 0.1 (device oracle)", _fmt(h["square_0.1_device"])],
        ["instructions per inference", _fmt(h["instructions_per_inference"])]])
    t["model"] = (["layer", "op", "weights", "output", "dtype", "flash B"], [
        [x["name"], x["op"], x["weights"] or "-", "x".join(map(str, x["output"])), x["dtype"],
         _fmt(x["flash_bytes"])] for x in conv["layers"]])
    rows = []
    for board, bj in s["budget"]["boards"].items():
        for c in bj["checks"]:
            rows.append([board, c["what"], _fmt(c["used"]), _fmt(c["limit"]),
                         "ok" if c["ok"] else "OVER"])
    t["budget"] = (["board", "check", "used B", "limit B", ""], rows)
    v = s["validate"]
    vrows = [["inputs validated", _fmt(v["validated"])],
             ["bit-exact vs host reference", f"{v['bit_exact']}/{v['validated']}"],
             ["top-1 agreement vs reference", _fmt(v["top1_agreement"])],
             ["device top-1 accuracy", _fmt(v.get("device_accuracy"))]]
    vrows += [[f"vs QKeras: {k}", _fmt(x)] for k, x in v.get("keras", {}).items()]
    t["validation"] = (["", ""], vrows)
    from toolchain.robustness import report as robustness_report

    for title, (head, body) in robustness_report.tables(s["attacks"]["results"]).items():
        t[f"robustness: {title}"] = (head, body)
    t["timings"] = (["stage", "seconds", ""], [
        [k, f"{x:.1f}", "reused" if s["reused"].get(k) else ""] for k, x in s["timings"].items()])
    return t


def markdown(s: dict[str, Any]) -> str:
    lines = ["# stq demo report", ""]
    for title, (head, body) in tables(s).items():
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body] + [""]
    return "\n".join(lines)


def _table_html(head: list[str], body: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                  for r in body)
    return f"<table><tr>{th}</tr>{trs}</table>"


def html_page(s: dict[str, Any], out: Path) -> str:
    from toolchain.robustness import report as robustness_report

    t = tables(s)
    links = {"budget": [p for p in s["budget"]["files"] if p.endswith(".html")],
             "validation": s["validate"]["files"],
             "robustness": [p for p in s["attacks"]["files"] if p.endswith(".html")]}
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>stq demo report</title>",
             "<style>body{font-family:sans-serif;margin:24px;max-width:1100px}"
             "table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #bbb;"
             "padding:3px 8px;font-size:13px}th{background:#eee}img{max-width:100%}</style>"
             "</head><body><h1>stq demo: digits STQ+JR on "
             f"{html.escape(str(s['config']['board']))}</h1>"]
    for sec in SECTIONS:
        parts.append(f'<section id="{sec}"><h2>{sec.capitalize()}</h2>')
        keys = [k for k in t if k == sec or k.startswith(f"{sec}:")]
        for k in keys:
            if k != sec:
                parts.append(f"<h3>{html.escape(k.split(': ', 1)[1])}</h3>")
            parts.append(_table_html(*t[k]))
        if sec == "budget":
            for board, bj in s["budget"]["boards"].items():
                png = base64.b64encode(Path(bj["chart"]).read_bytes()).decode()
                parts.append(f"<h3>{html.escape(board)}</h3><img class='chart' alt='budget "
                             f"{html.escape(board)}' src='data:image/png;base64,{png}'>")
        if sec == "robustness":
            png = base64.b64encode(robustness_report.plot_png(s["attacks"]["results"])).decode()
            parts.append(f"<img class='chart' alt='accuracy vs epsilon' "
                         f"src='data:image/png;base64,{png}'>")
        for link in links.get(sec, []):
            name = f"{Path(link).parent.name}/{Path(link).name}"
            parts.append(f"<p><a href='{html.escape(_rel(link, out))}'>detailed report: "
                         f"{html.escape(name)}</a></p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(out: Path, s: dict[str, Any]) -> dict[str, Path]:
    out = Path(out)
    ensure_writable_dir(out)
    paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json"}
    write_text(paths["json"], json.dumps(s, indent=1, default=str))
    write_text(paths["md"], markdown(s))
    write_text(paths["html"], html_page(s, out))
    return paths
