"""On-device validation against the host: run inputs on a board (QEMU, the virtual board or a
real device), compare every output with the bit-exact NumPy reference (and, optionally, the
QKeras model), stream each result to a JSONL file as it arrives, and summarise.

Results go to ``OUT/results.jsonl``, one line per input in index order, holding only
deterministic fields, so a run that was killed and resumed (``OUT/run.json`` identifies what it
belongs to) ends with exactly the file an uninterrupted run writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolchain import artifact, reference
from toolchain.errors import StqError
from toolchain.harness import DeviceLink
from toolchain.ir import Graph

RESULTS = "results.jsonl"
RUN_META = "run.json"


@dataclass
class ValidateConfig:
    board: str
    artifact: Path
    out_dir: Path
    port: str | None = None
    dataset: str | None = "digits"
    inputs: Path | None = None
    limit: int | None = None
    model: Path | None = None
    elf: Path | None = None
    timeout: float | None = None
    restart: bool = False
    progress: bool = True


# --- inputs --------------------------------------------------------------------------------


@dataclass
class Inputs:
    xq: np.ndarray  # integer inputs (N, *input shape)
    x_real: np.ndarray | None  # what the Keras model takes, when known
    labels: np.ndarray | None
    source: str


def load_inputs(g: Graph, dataset: str | None, path: Path | None, limit: int | None) -> Inputs:
    t = g.tensors[g.input]
    if path is not None:
        try:
            xs = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise StqError(f"cannot read inputs {path}: {exc}") from None
        if xs.shape == t.shape:
            xs = xs[None]
        if xs.ndim < 1 or tuple(xs.shape[1:]) != tuple(t.shape):
            raise StqError(f"inputs {path} have shape {xs.shape}; the model expects "
                           f"(N, {', '.join(map(str, t.shape))})")
        want = np.dtype(reference.NP_DTYPE[t.dtype])
        if xs.dtype != want:
            raise StqError(f"inputs {path} have dtype {xs.dtype}; the model expects {want} "
                           "(quantize real inputs with toolchain.reference.quantize_input)")
        xs = xs[:limit] if limit else xs
        for x in xs[:1]:
            reference.check_input(g, x)
        return Inputs(xs, None, None, str(path))
    if dataset is None:
        raise StqError("give --dataset or --inputs")
    from toolchain import datasets

    ds = datasets.load(dataset)
    x_real, labels = ds.x_test[:limit] if limit else ds.x_test, ds.y_test
    labels = labels[: len(x_real)]
    return Inputs(reference.quantize_input(g, x_real), x_real, np.asarray(labels), dataset)


def _digest(xq: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(xq).tobytes() + str(xq.dtype).encode()).hexdigest()


# --- devices -------------------------------------------------------------------------------


@contextlib.contextmanager
def open_device(cfg: ValidateConfig) -> Iterator[DeviceLink]:
    """A connected DeviceLink (INFO done) for --port, the virtual board or an emulated board."""
    if cfg.port is not None:
        timeout = cfg.timeout or 10.0
        link = DeviceLink.open(cfg.port, timeout=timeout, attempts=3)
        try:
            _handshake(link, f"port {cfg.port}")
            yield link
        finally:
            link.close()
        return
    if cfg.board == "virtual":
        from toolchain.virtual_board import VirtualBoard

        with VirtualBoard(cfg.artifact) as vb:
            with DeviceLink.open(vb.port_url, timeout=cfg.timeout or 2.0) as link:
                _handshake(link, f"the virtual board ({vb.port_url})")
                yield link
        return
    from toolchain.boards import load_board
    from toolchain.qemu import QemuBoard

    board = load_board(cfg.board)
    if not board.emulated:
        raise StqError(f"board {board.name} is not emulated: flash it (`stq flash`) and pass "
                       "--port /dev/ttyACM0 (or any pyserial URL)")
    elf = cfg.elf
    if elf is None:
        from toolchain.build import build

        elf = build(cfg.artifact, board, cfg.out_dir / f"fw-{board.name}").elf
    with QemuBoard(elf, board.qemu_machine, timeout=24 * 3600) as qemu:
        with DeviceLink.open(qemu.port_url, timeout=cfg.timeout or 15.0, attempts=6) as link:
            _handshake(link, f"QEMU {board.qemu_machine} ({qemu.port_url})")
            yield link
            link.quit()
        qemu.wait(10.0)


def _handshake(link: DeviceLink, what: str) -> None:
    try:
        link.info()
    except StqError as exc:
        raise StqError(f"no device answered on {what}: sent INFO {link.attempts} times, "
                       f"waiting {link.timeout:g} s each ({exc})") from None


# --- results file --------------------------------------------------------------------------


def _read_results(path: Path) -> list[dict]:
    """Complete lines of a results file; a torn last line (killed mid-write) is cut off."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    keep = data[: data.rfind(b"\n") + 1]
    if len(keep) != len(data):
        with open(path, "r+b") as f:
            f.truncate(len(keep))
    rows = [json.loads(line) for line in keep.decode().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if row.get("i") != i:
            raise StqError(f"{path}: line {i + 1} is for input {row.get('i')}, expected {i}")
    return rows


def _prepare_out(cfg: ValidateConfig, meta: dict) -> list[dict]:
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    meta_path, results = cfg.out_dir / RUN_META, cfg.out_dir / RESULTS
    if cfg.restart:
        results.unlink(missing_ok=True)
    if meta_path.is_file() and results.is_file():
        old = json.loads(meta_path.read_text())
        if old != meta:
            diff = [k for k in meta if old.get(k) != meta[k]]
            raise StqError(f"{cfg.out_dir} holds results of another run (different "
                           f"{', '.join(diff)}): use another -o or --restart")
    else:
        results.unlink(missing_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return _read_results(results)


# --- the run -------------------------------------------------------------------------------


class Progress:
    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.start_done, self.enabled = total, done, enabled
        self.t0 = self.last = time.monotonic()

    def update(self, done: int, retries: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.2):
            return
        self.last = now
        rate = (done - self.start_done) / max(now - self.t0, 1e-9)
        width = 30
        fill = int(width * done / max(self.total, 1))
        print(f"\r[validate] [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total} "
              f"{rate:7.1f} inf/s, {retries} retries", end="", file=sys.stderr, flush=True)


def _out_dtype(g: Graph) -> np.dtype:
    return np.dtype("<i4") if g.tensors[g.output].itemsize == 4 else np.dtype(np.int8)


def validate(cfg: ValidateConfig) -> dict:
    """Run the validation; return the summary (also written to OUT/summary.{json,md,html})."""
    g = reference.load_artifact_dir(cfg.artifact)
    model_hash = artifact.content_hash(g)
    inp = load_inputs(g, cfg.dataset, cfg.inputs, cfg.limit)
    n = len(inp.xq)
    if n == 0:
        raise StqError("no inputs to validate")
    meta = {"model_hash": model_hash, "inputs": inp.source, "inputs_sha256": _digest(inp.xq),
            "count": n, "board": cfg.board if cfg.port is None else f"port:{cfg.port}"}
    rows = _prepare_out(cfg, meta)
    expected = reference.predict(g, inp.xq).astype(_out_dtype(g))
    session: dict = {"resumed_at": len(rows), "inferences": 0, "seconds": 0.0}
    if len(rows) < n:
        with open_device(cfg) as link:
            info = link.info_
            assert info is not None
            if info.model_hash != model_hash:
                raise StqError(f"the firmware runs model {info.model_hash[:16]}, the artifact is "
                               f"{model_hash[:16]}: rebuild the firmware for this artifact")
            if info.input_bytes != inp.xq[0].nbytes or info.output_bytes != expected[0].nbytes:
                raise StqError(f"the device expects {info.input_bytes} input / "
                               f"{info.output_bytes} output bytes, the artifact "
                               f"{inp.xq[0].nbytes} / {expected[0].nbytes}")
            session.update(board=info.board, build_id=info.build_id, counter=info.counter)
            session.update(_run_device(cfg, link, inp, expected, len(rows)))
        rows = _read_results(cfg.out_dir / RESULTS)
    summary = summarize(cfg, g, inp, expected, rows, meta, session)
    write_reports(cfg.out_dir, summary)
    return summary


def _run_device(cfg: ValidateConfig, link: DeviceLink, inp: Inputs, expected: np.ndarray,
                start: int) -> dict:
    n = len(inp.xq)
    info = link.info_
    assert info is not None
    dt = expected.dtype
    progress = Progress(n, start, cfg.progress)
    t0 = time.monotonic()
    ticks: list[int] = []
    blobs = [np.ascontiguousarray(x).tobytes() for x in inp.xq]
    with open(cfg.out_dir / RESULTS, "a", encoding="ascii") as f:
        for i in range(start, n):
            reply = link.infer(blobs[i], blobs[i + 1] if i + 1 < n else None)
            y = np.frombuffer(reply.output, dt)
            row = {"i": i, "y": y.tolist(), "top1": int(y.argmax()),
                   "ref_top1": int(expected[i].argmax()),
                   "exact": bool(np.array_equal(y, expected[i]))}
            if inp.labels is not None:
                row["label"] = int(inp.labels[i])
            if info.has_instructions:  # instruction counts are exact (QEMU): deterministic
                row["instructions"] = reply.instructions
            ticks.append(reply.ticks)
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            f.flush()
            progress.update(i + 1, link.stats.retries)
    progress.update(n, link.stats.retries, force=True)
    if cfg.progress:
        print(file=sys.stderr)
    seconds = time.monotonic() - t0
    return {"inferences": n - start, "seconds": seconds,
            "inferences_per_s": (n - start) / max(seconds, 1e-9),
            "mean_ticks": float(np.mean(ticks)) if ticks else None,
            "clock_hz": info.clock_hz, "link": link.stats.as_dict()}


def keras_metrics(model_path: Path, g: Graph, inp: Inputs, y_dev: np.ndarray) -> dict:
    """X-CUBE-AI style: accuracy, L2 relative error, MAE and cosine similarity of the
    dequantized device logits against the QKeras model's pre-softmax outputs."""
    if inp.x_real is None:
        raise StqError("--model needs real-valued inputs (--dataset), not --inputs")
    import tensorflow as tf

    from toolchain.frontend import load_keras_model

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
             ("top-1 agreement vs reference", f"{s['top1_agreement']:.4f}")]
    if "device_accuracy" in s:
        items.append(("device top-1 accuracy", f"{s['device_accuracy']:.4f}"))
    if "mean_instructions" in s:
        items.append(("instructions / inference", f"{s['mean_instructions']:.0f}"))
    for k, v in s.get("keras", {}).items():
        items.append((f"QKeras {k}", f"{v:.6g}"))
    if sess.get("inferences"):
        items.append(("this session", f"{sess['inferences']} inferences, "
                                      f"{sess['inferences_per_s']:.1f} inf/s"))
        link = sess.get("link", {})
        items.append(("link recoveries", ", ".join(
            f"{k} {v}" for k, v in link.items() if k in
            ("retries", "timeouts", "corrupt_frames", "stale_replies", "reuploads"))))
    if s["first_mismatch"]:
        fm = s["first_mismatch"]
        items.append(("first mismatch", f"input {fm['i']}: device {fm['device']} != "
                                        f"reference {fm['reference']}"))
    return items


def write_reports(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    items = _table(summary)
    md = ["# stq validate", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in items]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in items)
    verdict = "PASS" if summary["mismatches"] == 0 else "FAIL"
    (out / "summary.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>stq validate {verdict}</title>"
        f"<h1>stq validate: {verdict}</h1><table>{rows}</table>\n")


def env_progress_default() -> bool:
    return os.environ.get("STQ_NO_PROGRESS", "") == ""
