"""Summary and reports of a validation run: agreement with the reference (and QKeras), cost,
link statistics; JSON, Markdown and HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.graph import Graph

if TYPE_CHECKING:
    from toolchain.validate.run import Inputs, ValidateConfig
from toolchain.reference import model as reference


def keras_metrics(model_path: Path, g: Graph, inp: Inputs, y_dev: np.ndarray) -> dict:
    """X-CUBE-AI style: accuracy, L2 relative error, MAE and cosine similarity of the
    dequantized device logits against the QKeras model's pre-softmax outputs."""
    if inp.x_real is None:
        raise StqError("--model needs real-valued inputs (--dataset), not --inputs")
    import tensorflow as tf

    from toolchain.frontend.keras import load_keras_model

    km = load_keras_model(model_path)
    last = km.layers[-1]
    if type(last).__name__ == "Softmax" or last.get_config().get("activation") == "softmax":
        km = tf.keras.Model(km.input, km.layers[-2].output)  # the logits, as the artifact
    y_k = km.predict(inp.x_real, verbose=0).reshape(len(inp.x_real), -1).astype(np.float64)
    y_d = reference.dequantize_output(g, y_dev)
    diff = y_d - y_k
    cos = np.sum(y_d * y_k, 1) / np.maximum(
        np.linalg.norm(y_d, axis=1) * np.linalg.norm(y_k, axis=1), 1e-12)
    out = {"keras_top1_agreement": float(np.mean(y_d.argmax(1) == y_k.argmax(1))),
           "l2r": float(np.linalg.norm(diff) / max(np.linalg.norm(y_k), 1e-12)),
           "mae": float(np.mean(np.abs(diff))), "cosine": float(np.mean(cos))}
    if inp.labels is not None:
        out["keras_accuracy"] = float(np.mean(y_k.argmax(1) == inp.labels))
    return out


def summarize(cfg: ValidateConfig, g: Graph, inp: Inputs, expected: np.ndarray,
              rows: list[dict], meta: dict, session: dict) -> dict:
    n = len(rows)
    y_dev = np.array([r["y"] for r in rows], dtype=expected.dtype).reshape(n, -1)
    exact = [r["exact"] for r in rows]
    first = next((r for r in rows if not r["exact"]), None)
    summary: dict = {
        **meta, "artifact": str(cfg.artifact), "validated": n,
        "bit_exact": int(sum(exact)), "mismatches": n - int(sum(exact)),
        "top1_agreement": float(np.mean([r["top1"] == r["ref_top1"] for r in rows])),
        "first_mismatch": None if first is None else {
            "i": first["i"], "device": first["y"], "reference": expected[first["i"]].tolist()},
        "session": session,
    }
    if inp.labels is not None:
        summary["device_accuracy"] = float(np.mean([r["top1"] == r["label"] for r in rows]))
    if rows and "instructions" in rows[0]:
        summary["mean_instructions"] = float(np.mean([r["instructions"] for r in rows]))
    if cfg.model is not None:
        summary["keras"] = keras_metrics(cfg.model, g, inp, y_dev)
    return summary


def _table(summary: dict) -> list[tuple[str, str]]:
    s, sess = summary, summary["session"]
    items = [("board", str(sess.get("board", s["board"]))), ("model hash", s["model_hash"][:16]),
             ("inputs", f"{s['validated']} of {s['count']} ({s['inputs']})"),
             ("bit-exact vs reference", f"{s['bit_exact']}/{s['validated']}"),
             ("top-1 agreement vs reference", f"{s['top1_agreement']:.4f} (n={s['validated']})")]
    if "device_accuracy" in s:
        items.append(("device top-1 accuracy",
                      f"{s['device_accuracy']:.4f} (n={s['validated']})"))
    if "mean_instructions" in s:
        items.append(("instructions / inference", f"{s['mean_instructions']:.0f}"))
    from toolchain.pipeline.report import KERAS_LABELS

    for k, v in s.get("keras", {}).items():
        items.append((KERAS_LABELS.get(k, f"QKeras {k}"), f"{v:.4f} (n={s['validated']})"
                      if k in ("keras_top1_agreement", "keras_accuracy") else f"{v:.6g}"))
    if sess.get("inferences"):
        items.append(("this session", f"{sess['inferences']} inferences, "
                                      f"{sess['inferences_per_s']:.1f} inf/s"))
        link = sess.get("link", {})
        items.append(("link recoveries", ", ".join(
            f"{k} {v}" for k, v in link.items() if k in
            ("retries", "timeouts", "early_retries", "corrupt_frames", "stale_replies",
             "chunks_resent", "resyncs", "reconnects"))))
    if s["first_mismatch"]:
        fm = s["first_mismatch"]
        items.append(("first mismatch", f"input {fm['i']}: device {fm['device']} != "
                                        f"reference {fm['reference']}"))
    return items


def write_reports(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    items = _table(summary)
    from toolchain import reports
    from toolchain.reports import Section, Table

    verdict = "PASS" if summary["mismatches"] == 0 else "FAIL"
    table = Table(["figure", "value"], [[k, v] for k, v in items], id="summary",
                  numeric_from=99)
    secs = [Section(None, "validation").add("table", table)]
    md = reports.markdown(f"stq validate: {verdict}", secs)
    if "farm" in summary["session"]:  # several devices: one row each (toolchain.farm)
        from toolchain.farm.report import farm_table

        md = md.rstrip("\n") + "\n\n## Devices\n\n" + "\n".join(
            farm_table(summary["session"]["farm"])) + "\n"
    (out / "summary.md").write_text(md)
    (out / "summary.html").write_text(reports.page(f"stq validate: {verdict}", secs))
