"""The robustness report's figures (matplotlib PNGs): accuracy against L-inf and L2 epsilon
with 95 % intervals, accuracy at half and full budget (convergence), the transfer heat map."""

from __future__ import annotations

import io
from typing import Any


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


def accuracy_png(results: list[dict], norm: str = "linf") -> bytes:
    """Accuracy (host) against epsilon in ``norm``, one panel per model, 95 % bands."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False,
                             sharey=True)
    for ax, res in zip(axes[0], results, strict=True):
        rows = [r for r in res["rows"] if r["norm"] == norm and r["eps"] is not None
                and not r.get("sanity")]
        for attack in dict.fromkeys(r["attack"] for r in rows):
            pts = sorted((r["eps"], r["acc"]["host"], *r["ci"]) for r in rows
                         if r["attack"] == attack)
            title = next(r["title"] for r in rows if r["attack"] == attack)
            xs = [0.0] + [p[0] for p in pts]
            ys = [res["clean"]["host"]] + [p[1] for p in pts]
            line = ax.plot(xs, ys, marker="o", ms=3, label=title,
                           ls="--" if attack.startswith("transfer") else "-")[0]
            ax.fill_between([p[0] for p in pts], [p[2] for p in pts], [p[3] for p in pts],
                            color=line.get_color(), alpha=0.12)
        ax.set_title(f"{res['model']} (n={res['n']}, {res.get('budget', '?')} budget)",
                     fontsize=9)
        ax.set_xlabel("epsilon (L-inf)" if norm == "linf" else "epsilon (L2)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if rows:
            ax.legend(fontsize=7, loc="upper right")
    axes[0][0].set_ylabel("robust accuracy")
    return _png(fig)


def convergence_png(results: list[dict]) -> bytes:
    """Accuracy at half and at the full budget of every attack and epsilon."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 5.0), squeeze=False,
                             sharey=True)
    for ax, res in zip(axes[0], results, strict=True):
        for r in res["rows"]:
            if r.get("half_acc") is None or r["eps"] is None:
                continue
            ax.plot([0.5, 1.0], [r["half_acc"], r["acc"]["host"]], marker="o", ms=3,
                    ls="-" if r["converged"] else ":",
                    label=f"{r['title']} {r['eps']:g}")
        ax.set_title(f"{res['model']} (n={res['n']})", fontsize=9)
        ax.set_xticks([0.5, 1.0], ["half budget", f"{res.get('budget', '?')} budget"])
        ax.set_xlim(0.4, 1.1)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    axes[0][0].set_ylabel("robust accuracy (dotted: not converged)")
    return _png(fig)


def transfer_png(tm: dict) -> bytes:
    """Source x target robust accuracy at each epsilon (the diagonal is white-box)."""
    plt = _plt()
    models = tm["models"]
    k = len(tm["eps"])
    fig, axes = plt.subplots(1, k, figsize=(1.2 * len(models) * k + 2, 1.0 * len(models) + 1.6),
                             squeeze=False)
    for ax, e, mat in zip(axes[0], tm["eps"], tm["acc"], strict=True):
        ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
        for i, row in enumerate(mat):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if v < 0.5 else "black")
        ax.set_xticks(range(len(models)), models, fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_xlabel("target (evaluated)")
        ax.set_ylabel("source (gradients)")
        ax.set_title(f"PGD eps {e:g} (n={tm['n']})", fontsize=9)
    return _png(fig)
