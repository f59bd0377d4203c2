"""Render a memory budget: a text table, JSON, Markdown and an HTML page with a bar chart.

The HTML page is self-contained: the per-layer chart (flash split into weights, requantization
parameters, parameter record and kernel code; RAM as the output activation and the arena bytes
alive while the layer runs) is a matplotlib PNG embedded as base64. Files are written atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from toolchain.budget.analysis import Budget, Check
from toolchain.fsutil import ensure_writable_dir, write_text

HEAD = ("layer", "type", "params", "weights B", "requant B", "record B", "code B", "flash B",
        "flash %", "act B", "live B")


def rows(b: Budget) -> list[list[str]]:
    total = max(1, b.model_flash)
    out = []
    for x in b.layers:
        kind = x.op + (f" ({x.weight_kind})" if x.weight_kind else "")
        out.append([x.name, kind, f"{x.params:,}", f"{x.weights_bytes:,}",
                    f"{x.requant_bytes:,}", f"{x.record_bytes:,}",
                    f"{x.code_bytes:,}" if b.elf else "-", f"{x.flash_bytes:,}",
                    f"{100.0 * x.flash_bytes / total:.1f}", f"{x.act_bytes:,}",
                    f"{x.live_bytes:,}"])
    return out


def summary_lines(b: Budget) -> list[str]:
    opt = {True: "optimal", False: "best found, not proven optimal", None: ""}[b.arena_optimal]
    lines = [
        f"model {b.model} (hash {b.hash[:16]}), {b.packing} packing",
        f"flash: weights {b.weights_bytes:,} B (base-3 would be {b.packing_bytes('base3'):,} B, "
        f"2-bit {b.packing_bytes('2bit'):,} B; int8 TFLite equivalent {b.int8_bytes:,} B), "
        f"model total {b.model_flash:,} B",
        f"arena: {b.arena_bytes:,} B ({opt}, {b.arena_strategy}); lower bound "
        f"{b.arena_lower_bound:,} B; greedy largest-first {b.arena_greedy:,} B; "
        f"scratch {b.scratch_bytes:,} B",
    ]
    if b.shared_code:
        lines.append(f"shared kernel code (helpers, argmax): {b.shared_code:,} B")
    if b.elf:
        e = b.elf
        code = e["kernel_code"] + e["shared_kernel_code"]
        lines.append(f"ELF {e['path']} ({e['board']}): {len(e['symbols'])} symbols match the "
                     f"prediction exactly; kernel code {code:,}"
                     f" B, model glue {e['model_code']:,} B, runtime flash {e['runtime_flash']:,} B"
                     f", runtime RAM {e['runtime_ram']:,} B, stack {e['stack_bytes']:,} B")
    return lines


def text(b: Budget, results: list[Check], notes: list[str]) -> str:
    table = [list(HEAD)] + rows(b)
    widths = [max(len(r[i]) for r in table) for i in range(len(HEAD))]
    out = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                     enumerate(zip(r, widths, strict=True))) for r in table]
    out += [""] + summary_lines(b) + [""] + [c.line() for c in results]
    if notes:
        out += [""] + notes
    return "\n".join(out) + "\n"


def to_json(b: Budget, results: list[Check], notes: list[str], budget: int,
            board: str | None) -> dict:
    return {
        "model": b.model, "hash": b.hash, "packing": b.packing, "board": board,
        "budget_bytes": budget, "ok": all(c.ok for c in results),
        "checks": [{"what": c.what, "used": c.used, "limit": c.limit, "ok": c.ok}
                   for c in results],
        "notes": notes,
        "layers": [{"index": x.index, "name": x.name, "op": x.op, "weight_kind": x.weight_kind,
                    "params": x.params, "weights_bytes": x.weights_bytes,
                    "requant_bytes": x.requant_bytes, "record_bytes": x.record_bytes,
                    "code_bytes": x.code_bytes if b.elf else None, "kernel": x.kernel,
                    "flash_bytes": x.flash_bytes, "act_bytes": x.act_bytes,
                    "live_bytes": x.live_bytes, "weights_by_packing": x.weights_alt,
                    "int8_bytes": x.int8_bytes} for x in b.layers],
        "flash": {"weights": b.weights_bytes, "weights_2bit": b.packing_bytes("2bit"),
                  "weights_base3": b.packing_bytes("base3"), "int8_equivalent": b.int8_bytes,
                  "model": b.model_flash, "shared_kernel_code": b.shared_code},
        "ram": {"arena": b.arena_bytes, "arena_lower_bound": b.arena_lower_bound,
                "arena_greedy": b.arena_greedy, "arena_optimal": b.arena_optimal,
                "arena_strategy": b.arena_strategy, "scratch": b.scratch_bytes,
                "offsets": b.offsets},
        "footprint": b.footprint,
        "symbols": b.symbols,
        "elf": b.elf,
    }


def markdown(b: Budget, results: list[Check], notes: list[str]) -> str:
    lines = [f"# Memory budget: {b.model}", ""]
    lines += ["| " + " | ".join(HEAD) + " |", "|" + "|".join(
        "---" if i < 2 else "---:" for i in range(len(HEAD))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows(b)]
    lines += [""] + [f"- {s}" for s in summary_lines(b)] + [""]
    lines += [f"- {'ok' if c.ok else '**OVER**'}: {c.line()}" for c in results]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def chart_png(b: Budget) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [x.name for x in b.layers]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.35 * len(names) + 1.8), sharey=True)
    left = [0] * len(names)
    parts = [("weights", [x.weights_bytes for x in b.layers]),
             ("requant", [x.requant_bytes for x in b.layers]),
             ("record", [x.record_bytes for x in b.layers]),
             ("code", [x.code_bytes for x in b.layers])]
    for label, vals in parts:
        ax1.barh(names, vals, left=left, label=label)
        left = [a + v for a, v in zip(left, vals, strict=True)]
    ax1.set_title("flash per layer (bytes)")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.invert_yaxis()
    ax2.barh(names, [x.live_bytes for x in b.layers], color="#bbbbbb", label="arena alive")
    ax2.barh(names, [x.act_bytes for x in b.layers], color="#d62728", label="output activation")
    ax2.axvline(b.arena_bytes, color="black", linestyle="--", label="arena size")
    ax2.set_title("RAM per layer (bytes)")
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def html_page(b: Budget, results: list[Check], notes: list[str]) -> str:
    from toolchain import reports
    from toolchain.reports import Section, Table

    sec = Section(None, "budget").add("table", Table(list(HEAD), rows(b), id="layers",
                                                     numeric_from=2))
    checks = Section("Checks", "checks-section").add(
        "checks", {"items": [(c.ok, c.line()) for c in results], "id": "checks"})
    summary = Section("Summary", "summary")
    for line in summary_lines(b) + notes:
        summary.add("text", line)
    chart = Section("Per layer", "per-layer").add(
        "figure", {"png": chart_png(b), "id": "chart", "alt": "per-layer flash and RAM"})
    return reports.page(f"Memory budget: {b.model}", [sec, checks, summary, chart])


def write_reports(outdir: Path, b: Budget, results: list[Check], notes: list[str],
                  budget: int, board: str | None) -> dict[str, Path]:
    outdir = Path(outdir)
    ensure_writable_dir(outdir)
    paths = {"json": outdir / "budget.json", "md": outdir / "budget.md",
             "html": outdir / "budget.html"}
    write_text(paths["json"], json.dumps(to_json(b, results, notes, budget, board), indent=2))
    write_text(paths["md"], markdown(b, results, notes))
    write_text(paths["html"], html_page(b, results, notes))
    return paths
