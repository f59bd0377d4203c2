"""On-device validation against the host: run inputs on a board (QEMU, the virtual board or a
real device), compare every output with the bit-exact NumPy reference (and, optionally, the
QKeras model), stream each result to a JSONL file as it arrives, and summarise.

Results go to ``OUT/results.jsonl``, one line per input in index order, holding only
deterministic fields (instruction counts included: exact under QEMU), so a run that was killed
and resumed (``OUT/run.json`` identifies what it belongs to) ends with exactly the file an
uninterrupted run writes. Link statistics are appended to ``OUT/link.jsonl`` every few seconds
and when a session ends or aborts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.device.connect import connect
from toolchain.device.link import DeviceLink
from toolchain.errors import StqError
from toolchain.ir import artifact
from toolchain.ir.graph import Graph
from toolchain.reference import model as reference
from toolchain.validate.report import summarize, write_reports

RESULTS = "results.jsonl"
RUN_META = "run.json"
LINK_LOG = "link.jsonl"  # link statistics, appended as the session goes (kept on abort)
LINK_LOG_EVERY_S = 2.0


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
    give_up_after: float | None = None
    restart: bool = False
    progress: bool = True
    serial: str = "tcp"  # QEMU's UART: a TCP port, or a pty (/dev/pts/N)
    farm: Any = None  # a toolchain.farm.pool.FarmSpec: shard the inputs over several devices
    data_dir: Path | None = None  # local folder of --dataset (cifar10, svhn, speech_commands)


# --- inputs --------------------------------------------------------------------------------


@dataclass
class Inputs:
    xq: np.ndarray  # integer inputs (N, *input shape)
    x_real: np.ndarray | None  # what the Keras model takes, when known
    labels: np.ndarray | None
    source: str


def load_inputs(g: Graph, dataset: str | None, path: Path | None, limit: int | None,
                data_dir: Path | None = None) -> Inputs:
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
    from toolchain.training import datasets

    ds = datasets.load(dataset, data_dir)
    x_real, labels = ds.x_test[:limit] if limit else ds.x_test, ds.y_test
    labels = labels[: len(x_real)]
    return Inputs(reference.quantize_input(g, x_real), x_real, np.asarray(labels), dataset)


def _digest(xq: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(xq).tobytes() + str(xq.dtype).encode()).hexdigest()


# --- devices -------------------------------------------------------------------------------


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
    """A tqdm bar of inferences (toolchain.progress: drawn only on a terminal)."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from toolchain.progress import bar

        self.bar = bar(total, "validate", enabled, initial=done, unit="inf")

    def update(self, done: int, retries: int, force: bool = False) -> None:
        self.bar.set_postfix(retries=retries, refresh=False)
        self.bar.update(done - self.bar.n)
        if force:
            self.bar.close()


def _out_dtype(g: Graph) -> np.dtype:
    return np.dtype("<i4") if g.tensors[g.output].itemsize == 4 else np.dtype(np.int8)


def validate(cfg: ValidateConfig) -> dict:
    """Run the validation; return the summary (also written to OUT/summary.{json,md,html})."""
    g = reference.load_artifact_dir(cfg.artifact)
    model_hash = artifact.content_hash(g)
    inp = load_inputs(g, cfg.dataset, cfg.inputs, cfg.limit, cfg.data_dir)
    n = len(inp.xq)
    if n == 0:
        raise StqError("no inputs to validate")
    meta = {"model_hash": model_hash, "inputs": inp.source, "inputs_sha256": _digest(inp.xq),
            "count": n, "board": cfg.board if cfg.port is None else f"port:{cfg.port}"}
    rows = _prepare_out(cfg, meta)
    expected = reference.predict(g, inp.xq).astype(_out_dtype(g))
    session: dict = {"resumed_at": len(rows), "inferences": 0, "seconds": 0.0}
    if len(rows) < n and cfg.farm is not None:  # several devices: toolchain.farm
        from toolchain.farm.validate import run_farm

        session.update(run_farm(cfg, inp, expected, len(rows), model_hash))
        rows = _read_results(cfg.out_dir / RESULTS)
    elif len(rows) < n:
        with connect(cfg.board, cfg.artifact, cfg.out_dir, cfg.port, cfg.elf,
                     cfg.timeout, cfg.give_up_after, cfg.serial) as link:
            info = check_device(link, model_hash, inp.xq[0].nbytes, expected[0].nbytes)
            session.update(board=info.board, build_id=info.build_id, counter=info.counter)
            session.update(_run_device(cfg, link, inp, expected, len(rows)))
        rows = _read_results(cfg.out_dir / RESULTS)
    summary = summarize(cfg, g, inp, expected, rows, meta, session)
    write_reports(cfg.out_dir, summary)
    return summary


def check_device(link: DeviceLink, model_hash: str, in_bytes: int, out_bytes: int) -> Any:
    """The device's INFO, refused unless it runs this artifact with these input/output sizes."""
    info = link.info_
    assert info is not None
    if info.model_hash != model_hash:
        raise StqError(f"the firmware runs model {info.model_hash[:16]}, the artifact is "
                       f"{model_hash[:16]}: rebuild the firmware for this artifact")
    if info.input_bytes != in_bytes or info.output_bytes != out_bytes:
        raise StqError(f"the device expects {info.input_bytes} input / "
                       f"{info.output_bytes} output bytes, the artifact "
                       f"{in_bytes} / {out_bytes}")
    return info


def result_line(i: int, reply: Any, info: Any, expected: np.ndarray, label: int | None) -> str:
    """Input ``i``'s line of results.jsonl (``expected``: its reference output; deterministic
    fields only)."""
    y = np.frombuffer(reply.output, expected.dtype)
    row = {"i": i, "y": y.tolist(), "top1": int(y.argmax()),
           "ref_top1": int(expected.argmax()),
           "exact": bool(np.array_equal(y, expected))}
    if label is not None:
        row["label"] = int(label)
    if info.has_instructions:  # instruction counts are exact (QEMU): deterministic
        row["instructions"] = reply.instructions
    return json.dumps(row, separators=(",", ":")) + "\n"


def _run_device(cfg: ValidateConfig, link: DeviceLink, inp: Inputs, expected: np.ndarray,
                start: int) -> dict:
    n = len(inp.xq)
    info = link.info_
    assert info is not None
    progress = Progress(n, start, cfg.progress)
    t0 = time.monotonic()
    ticks: list[int] = []
    blobs = [np.ascontiguousarray(x).tobytes() for x in inp.xq]
    log = LinkLog(cfg.out_dir / LINK_LOG, link, start)
    try:
        _run_rows(cfg, link, inp, expected, start, blobs, ticks, progress, log)
    except BaseException as exc:
        log.write("aborted", str(exc) or type(exc).__name__)
        raise
    log.write("done")
    progress.update(n, link.stats.retries, force=True)
    seconds = time.monotonic() - t0
    return {"inferences": n - start, "seconds": seconds,
            "inferences_per_s": (n - start) / max(seconds, 1e-9),
            "mean_ticks": float(np.mean(ticks)) if ticks else None,
            "clock_hz": info.clock_hz, "link": link.stats.as_dict()}


class LinkLog:
    """Appends one JSON line of link statistics at most every LINK_LOG_EVERY_S (and at the end
    or on abort): a killed session keeps what its link went through."""

    def __init__(self, path: Path, link: DeviceLink, start: int) -> None:
        self.path, self.link, self.done = path, link, start
        self.session = f"{time.time():.3f}-{os.getpid()}"
        self.last = time.monotonic()
        self.write("start")

    def maybe_write(self, done: int) -> None:
        self.done = done
        if time.monotonic() - self.last >= LINK_LOG_EVERY_S:
            self.write("progress")

    def write(self, event: str, detail: str = "") -> None:
        self.last = time.monotonic()
        row = {"session": self.session, "event": event, "time": round(time.time(), 3),
               "done": self.done, **self.link.stats.as_dict()}
        if detail:
            row["detail"] = detail
        with open(self.path, "a", encoding="ascii") as f:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def _run_rows(cfg: ValidateConfig, link: DeviceLink, inp: Inputs, expected: np.ndarray,
              start: int, blobs: list[bytes], ticks: list[int], progress: Progress,
              log: LinkLog) -> None:
    info = link.info_
    assert info is not None
    with open(cfg.out_dir / RESULTS, "a", encoding="ascii") as f:
        for i, reply in enumerate(link.infer_all(blobs, start), start):
            ticks.append(reply.ticks)
            f.write(result_line(i, reply, info, expected[i],
                                None if inp.labels is None else inp.labels[i]))
            f.flush()
            progress.update(i + 1, link.stats.retries)
            log.maybe_write(i + 1)


def env_progress_default() -> bool:
    return os.environ.get("STQ_NO_PROGRESS", "") == ""
