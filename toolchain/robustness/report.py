"""The robustness report: one or more models' attack results (OUT/results.json of `stq attack`)
as Markdown, HTML (accuracy-vs-epsilon plots embedded) and JSON, with the gradient-masking
diagnostic. Written atomically (toolchain.fsutil)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from toolchain.errors import StqError
from toolchain.fsutil import write_text
from toolchain.robustness.masking import diagnose

ORDER = ("fp", "int8", "stq", "stq-jr")




def load_results(dirs: list[Path]) -> list[dict]:
    out = []
    for d in dirs:
        p = Path(d) if Path(d).suffix == ".json" else Path(d) / "results.json"
        try:
            out.append(json.loads(p.read_text()))
        except FileNotFoundError:
            raise StqError(f"{p} not found: run `stq attack ... -o {d}` first") from None
        except json.JSONDecodeError as exc:
            raise StqError(f"{p} is not valid JSON ({exc})") from None
    names = [r["model"] for r in out]
    if len(set(names)) != len(names):
        raise StqError(f"two result sets for the same model: {names}")
    return sorted(out, key=lambda r: (ORDER.index(r["model"]) if r["model"] in ORDER else 99,
                                      r["model"]))


def _keys(results: list[dict]) -> list[tuple[str, float | None]]:
    seen: dict[tuple[str, float | None], None] = {}
    for res in results:
        for r in res["rows"]:
            seen.setdefault((r["attack"], r["eps"]), None)
    return list(seen)


def _cell(res: dict, attack: str, eps: float | None, what: str = "host") -> str:
    for r in res["rows"]:
        if r["attack"] == attack and r["eps"] == eps:
            v = r["acc"].get(what)
            return "" if v is None else f"{v:.3f}"
    return "-"


def to_json(results: list[dict]) -> dict:
    return {"models": [r["model"] for r in results], "results": results,
            "attacks": sorted({r["attack"] for res in results for r in res["rows"]}),
            "masking": {res["model"]: diagnose(res) for res in results}}


def _equal(res: dict, attack: str) -> str:
    eq = [r["host_device_equal"] for r in res["rows"] if r["attack"] == attack]
    if not res.get("device") or any(e is None for e in eq):
        return "n/a"
    return "equal" if all(eq) else "DIFFERENT"


def _queries(res: dict, attack: str) -> str:
    qs = {(r["eps"] if r["bounded"] else None): r for r in res["rows"] if r["attack"] == attack}
    total = sum(r["queries"] or 0 for r in qs.values())
    stop = any(r["budget_exhausted"] for r in qs.values())
    if not any(r["queries"] is not None for r in qs.values()):
        return "-"
    return f"{total:,}" + (" (budget reached)" if stop else "")


def tables(results: list[dict]) -> dict[str, tuple[list[str], list[list[str]]]]:
    models = [r["model"] for r in results]
    acc_head = ["attack", "eps", *models]
    acc = [["clean", "", *[f"{r['clean']['host']:.3f}" for r in results]]]
    for attack, eps in _keys(results):
        acc.append([attack, "any" if eps is None else f"{eps:g}",
                    *[_cell(r, attack, eps) for r in results]])
    attacks = sorted({a for a, _ in _keys(results)})
    dev_head = ["model", "device", "clean host", "clean device", *attacks]
    dev = [[r["model"], r.get("device") or "-", f"{r['clean']['host']:.3f}",
            "-" if r["clean"]["device"] is None else f"{r['clean']['device']:.3f}",
            *[_equal(r, a) for a in attacks]] for r in results]
    q_head = ["model", "attack oracle", *attacks]
    q = [[r["model"], r.get("attack_oracle", "-"), *[_queries(r, a) for a in attacks]]
         for r in results]
    mask_head = ["model", "gradient masking", "why"]
    mask = []
    for r in results:
        d = diagnose(r)
        mask.append([r["model"], "FLAGGED" if d["flagged"] else "no sign",
                     "; ".join(d["reasons"]) or "white-box attacks are the strongest and "
                     "accuracy falls with epsilon"])
    return {"accuracy": (acc_head, acc), "device": (dev_head, dev), "queries": (q_head, q),
            "masking": (mask_head, mask)}


def plot_png(results: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False,
                             sharey=True)
    for ax, res in zip(axes[0], results, strict=True):
        for attack in sorted({r["attack"] for r in res["rows"]}):
            pts = sorted((r["eps"], r["acc"]["host"]) for r in res["rows"]
                         if r["attack"] == attack and r["eps"] is not None)
            xs = [0.0] + [p[0] for p in pts]
            ys = [res["clean"]["host"]] + [p[1] for p in pts]
            ax.plot(xs, ys, marker="o", ms=3, label=attack,
                    ls="--" if attack.startswith("transfer") else "-")
        ax.set_title(f"{res['model']} (n={res['n']})")
        ax.set_xlabel("epsilon (L-inf)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def markdown(results: list[dict]) -> str:
    out = ["# Robustness report", "",
           f"Dataset {results[0].get('dataset', '?')}; accuracy on the host model (the integer "
           "reference for converted models). Minimum-norm attacks (cw, boundary, hsj, zoo) "
           "count an image as broken at eps when the perturbation they found has L-inf norm "
           "<= eps; 'any' is without a bound.", ""]
    titles = {"accuracy": "Accuracy per attack and epsilon",
              "device": "Host vs device (every adversarial input, identical outputs)",
              "queries": "Black-box queries", "masking": "Gradient-masking diagnostic"}
    for name, (head, rows) in tables(results).items():
        out += [f"## {titles[name]}", "", "| " + " | ".join(head) + " |",
                "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def html_page(results: list[dict]) -> str:
    png = base64.b64encode(plot_png(results)).decode()
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>stq robustness</title>",
             "<style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse;"
             "margin-bottom:18px}td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px}"
             "th{background:#eee}.bad{background:#f8c8c8}</style></head><body>",
             "<h1>Robustness report</h1>",
             f"<p>Dataset {html.escape(str(results[0].get('dataset', '?')))}; models "
             f"{html.escape(', '.join(r['model'] for r in results))}.</p>",
             f'<img id="chart" alt="accuracy vs epsilon" src="data:image/png;base64,{png}">']
    titles = {"accuracy": "Accuracy per attack and epsilon", "device": "Host vs device",
              "queries": "Black-box queries", "masking": "Gradient-masking diagnostic"}
    for name, (head, rows) in tables(results).items():
        parts.append(f"<h2>{titles[name]}</h2><table id=\"{name}\"><tr>" +
                     "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
        for r in rows:
            cells = "".join(
                f"<td{' class=bad' if c in ('DIFFERENT', 'FLAGGED') else ''}>"
                f"{html.escape(c)}</td>" for c in r)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(out: Path, results: list[dict]) -> dict[str, Path]:
    if not results:
        raise StqError("no results to report")
    paths = {"md": out / "robustness.md", "html": out / "robustness.html",
             "json": out / "robustness.json"}
    write_text(paths["json"], json.dumps(to_json(results), indent=2, default=float) + "\n")
    write_text(paths["md"], markdown(results))
    write_text(paths["html"], html_page(results))
    return paths
