"""The report of `stq experiment`: the method's table (host and device), accuracy-vs-eps plots,
sizes and instructions per inference, and the verdict on STQ+JR; Markdown, HTML and JSON."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from toolchain.fsutil import ensure_writable_dir, write_text
from toolchain.pipeline.experiment_sections import (
    budget_lines,
    l2_lines,
    masking_lines,
    transfer_lines,
)

COLUMNS = ("fgsm", "pgd", "cw", "square", "boundary", "zoo")
TITLE = {"fgsm": "FGSM", "pgd": "PGD", "cw": "C&W-L2", "square": "Square",
         "boundary": "Boundary", "zoo": "ZOO"}
L2 = ("cw", "boundary", "zoo")  # minimise an L2 perturbation: scored at L2 epsilons


def headline(s: dict) -> tuple[float, float]:
    """The table's epsilons: the largest L-inf one, the middle L2 one."""
    c = s["attack_config"]
    l2 = sorted(c.get("l2_eps") or [0.0])
    return max(c["eps"]), l2[len(l2) // 2]


def _acc(res: dict, attack: str, eps: float, who: str) -> float | None:
    for r in res.get("rows", []):
        if r["attack"] == attack and r.get("eps") is not None and abs(r["eps"] - eps) < 1e-9 \
                and not r.get("sanity"):
            return r["acc"].get(who)
    return None


def _acc_for(s: dict, res: dict, attack: str, e: float, who: str) -> float | None:
    """``_acc`` at the experiment's epsilon ``e`` on this result's own scale: a .tflite
    baseline's epsilons are mapped onto its input range (pixels 0..255), position by position."""
    key = "l2_eps" if attack in L2 else "eps"
    conf, own = list(s["attack_config"].get(key) or []), list(res.get(key) or [])
    if e in conf and len(own) == len(conf):
        e = own[conf.index(e)]
    return _acc(res, attack, e, who)


def _at(s: dict, attack: str) -> float:
    e, l2 = headline(s)
    return l2 if attack in L2 else e


def _mi(v: float | None) -> str:
    return "-" if not v else f"{v / 1e6:.2f} M"


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def table_rows(s: dict) -> tuple[float, list[dict]]:
    eps = headline(s)[0]
    rows = []
    for name, res in s["attacks"]["results"].items():
        row: dict[str, Any] = {"model": name, "n": res.get("n"), "error": res.get("error")}
        if not res.get("error"):
            row["clean"] = {w: res["clean"].get(w) for w in ("host", "device")}
            for a in COLUMNS:
                row[a] = {w: _acc_for(s, res, a, _at(s, a), w) for w in ("host", "device")}
        usage = s["builds"]["usage"].get(name, {})
        row["flash_kb"] = usage.get("FLASH", [0])[0] / 1024 if usage else None
        row["ram_kb"] = usage.get("RAM", [0])[0] / 1024 if usage else None
        v = s["validate"].get(name, {})
        row["instructions"] = v.get("mean_instructions")
        row["bit_exact"] = f"{v.get('bit_exact')}/{v.get('validated')}" if v else "-"
        wb = (s["convert"].get(name) or {}).get("weight_bytes")
        if name == "ensemble":  # its members' weights, linked side by side
            wb = sum((s["convert"].get(m["name"]) or {}).get("weight_bytes") or 0
                     for m in (s.get("ensemble") or {}).get("members", [])) or None
        row["weights_kb"] = wb / 1024 if wb else None
        rows.append(row)
    return eps, rows


def verdicts(rows: list[dict]) -> list[str]:
    """Every column where STQ+JR is not strictly more robust than every other model."""
    jr = next((r for r in rows if r["model"] == "stq-jr" and not r.get("error")), None)
    if jr is None:
        return ["STQ+JR was not evaluated."]
    out = []
    for a in COLUMNS:
        mine = jr[a]["host"]
        better = [r["model"] for r in rows if r is not jr and not r.get("error")
                  and r[a]["host"] is not None and mine is not None and r[a]["host"] >= mine]
        if better:
            out.append(f"Under {TITLE[a]}, STQ+JR ({_f(mine)}, n={jr['n']}) is not more robust "
                       f"than {', '.join(better)} on this data.")
    return out or ["STQ+JR is more robust than every other model under every attack here."]


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = s["attack_config"]["eps"]
    attacks = [a for a in COLUMNS if a in s["attack_config"]["attacks"]]
    fig, axes = plt.subplots(1, len(attacks), figsize=(3 * len(attacks), 3), squeeze=False)
    for ax, a in zip(axes[0], attacks, strict=True):
        for name, res in s["attacks"]["results"].items():
            if res.get("error"):
                continue
            xs = s["attack_config"]["l2_eps"] if a in L2 else eps
            ys = [_acc_for(s, res, a, e, "host") for e in xs]
            ax.plot(xs if a in L2 else [e * 255 for e in xs], ys, marker="o", label=name)
        ax.set_title(TITLE[a])
        ax.set_xlabel("L2 eps" if a in L2 else "L-inf eps (x 1/255)")
        ax.set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("accuracy (host)")
    axes[0][-1].legend(fontsize=6)
    n = next((r.get("n") for r in s["attacks"]["results"].values() if r.get("n")), "?")
    fig.suptitle(f"{s['dataset']['name']} SUBSET ({s['dataset']['test']} test images), "
                 f"n={n} attacked", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(s: dict) -> str:
    eps, rows = table_rows(s)
    c, d = s["config"], s["dataset"]
    cmd = s.get("command") or (f"stq experiment --model {c['model']} --dataset {c['dataset']} "
                               f"--data-dir {c['data_dir']} --budget {c['budget']}")
    n = next((r["n"] for r in rows if r.get("n")), "?")
    lines = [f"# Experiment: {c['model']} on {d['name']}", "", f"Command: `{cmd}`", "",
             f"Run time: {s['seconds']:.0f} s on this machine (stages reused from cache: "
             f"{sum(bool(v) for v in s['reused'].values())}).", "",
             f"**Data: a subset** ({d['train']} training / {d['test']} test images"
             f"{', CIFAR-10 subset' if d['name'] == 'cifar10' else ''}); models trained "
             f"{c['epochs']} epoch(s) on at most {c['limit']} examples; attacks at the "
             f"**{c['budget']}** budget on n = {n} test images: tiny numbers, "
             "wide uncertainty, not a claim about the method at scale.", "",
             f"Accuracy under attack: L-inf attacks at eps = {eps * 255:.0f}/255, the L2 "
             f"attacks C&W-L2, Boundary and ZOO at L2 eps = {headline(s)[1]:g} (an image "
             "counts as robust when the attack found no adversarial within that L2 distance); "
             "budgets below; host = "
             "bit-exact integer reference (Keras for fp), device = every adversarial input run "
             f"on {c['board']}. Black-box queries went to the "
             f"{'device' if c.get('device_queries') == 'True' else 'host reference'}.", "",
             "| model | clean h/d | " + " | ".join(f"{TITLE[a]} h/d" for a in COLUMNS)
             + " | flash KB | RAM KB | weights KB | instructions/inference | bit-exact |",
             "|---" * (len(COLUMNS) + 7) + "|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | not evaluated: {r['error']} |")
            continue
        cells = [f"{_f(r[k]['host'])}/{_f(r[k]['device'])}" for k in ("clean", *COLUMNS)]
        lines.append(f"| {r['model']} (n={r['n']}) | " + " | ".join(cells) +
                     f" | {_f(r['flash_kb'])} | {_f(r['ram_kb'])} | {_f(r['weights_kb'])} | "
                     f"{_mi(r['instructions'])} | {r['bit_exact']} |")
    lines += ["", "## STQ+JR against the others", ""] + [f"- {v}" for v in verdicts(rows)]
    lines += budget_lines(s) + l2_lines(s) + masking_lines(s) + transfer_lines(s)
    q = s.get("quanos_bits")
    if q:
        lines += ["", "## Quanos bit widths (ANS rule, Panda et al. ISLPED 2020)", "",
                  ", ".join(f"{k}: {v}" for k, v in q.items())]
    lines += farm_lines(s)
    lines += ["", "## Accuracy vs eps (host; subset)", "", "![accuracy vs eps](eps.png)", ""]
    return "\n".join(lines)


def farm_lines(s: dict) -> list[str]:
    """The device stages' farm reports (toolchain.farm): per stage and model, one row per
    device (items, queries, throughput, link retries, re-queued items, failure)."""
    from toolchain.farm.report import farm_table

    parts = [(f"validation of {name}", v.get("farm")) for name, v in s["validate"].items()]
    what = "attacks (device queries)" if s.get("config", {}).get("device_queries") == "True" \
        else "adversarial replay"
    parts += [(f"{what} of {name}", r.get("farm")) for name, r in s["attacks"]["results"].items()]
    out = []
    for title, farm in parts:
        if farm:
            out += ["", f"### {title}: {farm['used']} of {len(farm['devices'])} devices, "
                        f"{farm['queries']} queries, {farm['failed']} failed", "",
                    *farm_table(farm)]
    return ["", "## Devices (board farm, docs/farm.md)", *out] if out else []


def write(root: Path, s: dict) -> dict[str, Path]:
    root = Path(root)
    ensure_writable_dir(root)
    plot(s, root / "eps.png")
    if s.get("transfer"):
        from toolchain.reports.figures import transfer_png

        (root / "transfer.png").write_bytes(transfer_png(s["transfer"]))
    md = markdown(s)
    write_text(root / "report.md", md)
    write_text(root / "report.json", json.dumps(s, indent=1, default=str) + "\n")
    body = "".join(f"<p>{html.escape(ln)}</p>" if not ln.startswith("|") else
                   "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>"
                                    for c in ln.strip("|").split("|")) + "</tr>"
                   for ln in md.splitlines() if ln and not ln.startswith("|---"))
    write_text(root / "report.html", "<!doctype html><meta charset=utf-8><title>stq "
               "experiment</title><table border=1>" + body.replace("![accuracy vs eps]"
                                                                   "(eps.png)", "").replace(
        "![transfer matrix](transfer.png)", "")
               + "</table><img src='eps.png' alt='accuracy vs eps (subset)'>"
               + ("<img src='transfer.png' alt='transfer matrix'>" if s.get("transfer") else ""))
    return {"md": root / "report.md", "html": root / "report.html",
            "json": root / "report.json", "plot": root / "eps.png"}
