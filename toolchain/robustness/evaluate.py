"""Adversarial evaluation of one model: every attack and epsilon, scored on the host model and
(for converted models) checked on the device, resumable, written to OUT/results.json.

The model under test is the QKeras ``.h5``; with its artifact (``stq convert`` OUTDIR) the
"host" model is the bit-exact integer reference, otherwise the Keras model itself. White-box
attacks use the QKeras gradients; black-box attacks query an oracle: the device (--board /
--port), the host-compiled C (``host-c``) or the reference. Every adversarial input is then
quantized, run on the host model and on that device oracle, and the two outputs must be
identical (``host_device_equal``; any difference makes the run fail after its report).

Files in OUT: ``chunks.jsonl`` (one line per finished chunk of images: the adversarial inputs,
queries, seconds; a rerun skips what is there), ``queries.jsonl`` (every oracle call as it
happens), ``results.json`` (the scores).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.fsutil import ensure_writable_dir, write_text
from toolchain.robustness import attacks as A
from toolchain.robustness import oracles

CHUNKS = "chunks.jsonl"
QUERIES = "queries.jsonl"
RESULTS = "results.json"
TRANSFER_ATTACKS = ("fgsm", "pgd")


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def _unb64(s: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4").reshape(shape).copy()


def _read_chunks(path: Path, run_id: str) -> dict[tuple[str, int], dict]:
    done: dict[tuple[str, int], dict] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill: that chunk runs again
            continue
        if rec.get("run") == run_id:
            done[(rec["key"], rec["start"])] = rec
    return done


def model_label(path: Path) -> str:
    """'digits_stq-jr.h5' -> 'stq-jr' (the variant), else the file's stem."""
    stem = Path(path).stem
    return stem.split("_", 1)[1] if "_" in stem else stem


@contextmanager
def _device(g: Any, artifact: Path | None, backend: str, board: str | None, port: str | None,
            elf: Path | None, workdir: Path, farm: Any = None) -> Iterator[Any]:
    """The second integer backend to compare with the reference (device or host C), if any."""
    if farm is not None:  # several devices (toolchain.farm): a FarmOracle
        from toolchain.farm.attack import FarmOracle

        with FarmOracle(g, farm) as fo:
            yield fo
        return
    if g is None or (board is None and port is None and backend == "reference"):
        yield None
        return
    with oracles.open_oracle(g, artifact, backend, board, port, elf, workdir) as o:
        yield o


def evaluate(model_path: Path, artifact: Path | None, cfg: A.AttackConfig, dataset: str,
             out: Path, backend: str = "reference", board: str | None = None,
             port: str | None = None, elf: Path | None = None,
             transfer_from: tuple[Path, ...] = (), label: str | None = None,
             log: Callable[[str], None] = print, keras_model: Any = None,
             farm: Any = None) -> dict:
    """Run every configured attack (resuming from OUT/chunks.jsonl) and score it; returns
    (and writes to OUT/results.json) the result. ``keras_model`` overrides loading the .h5.
    ``farm`` (a toolchain.farm FarmSpec): black-box attacks one image per work item over its
    devices (toolchain.farm.attack), the same bytes on any number of devices."""
    from toolchain.frontend.keras import load_keras_model
    from toolchain.reference import model as reference
    from toolchain.training import datasets

    cfg.check()
    ensure_writable_dir(out)
    ds = datasets.load(dataset)
    x, y = ds.x_test[:cfg.limit].astype(np.float32), ds.y_test[:cfg.limit].astype(np.int64)
    keras = keras_model if keras_model is not None else load_keras_model(model_path)
    g = reference.load_artifact_dir(artifact) if artifact is not None else None
    host: oracles.Oracle = oracles.ReferenceOracle(g) if g is not None else \
        oracles.KerasOracle(keras, "keras")
    keras_o = oracles.KerasOracle(keras, "keras")
    label = label or model_label(model_path)
    run_id = json.dumps({"model": str(Path(model_path).resolve()), "dataset": dataset,
                         "cfg": cfg.as_dict(), "transfer": [str(p) for p in transfer_from],
                         **({"per_image": True} if farm is not None else {})},
                        sort_keys=True, default=str)
    done = _read_chunks(out / CHUNKS, run_id)
    if done:
        log(f"[attack] resuming: {len(done)} finished chunks in {out / CHUNKS}")
    stats: dict[str, dict] = {}
    advs: dict[str, np.ndarray] = {}
    with ExitStack() as stack:
        device = stack.enter_context(_device(g, artifact, backend, board, port, elf, out, farm))
        attack_oracle = device if device is not None else host
        chunks_f = stack.enter_context(open(out / CHUNKS, "a"))
        counted = oracles.CountedOracle(attack_oracle, None, out / QUERIES, {"model": label})
        stack.callback(counted.close)

        def record(rec: dict) -> None:
            chunks_f.write(json.dumps({"run": run_id, **rec}) + "\n")
            chunks_f.flush()

        jobs: list[tuple[str, str, float | None, Any]] = []
        wb_clf = None
        for name in cfg.attacks:
            for eps in (cfg.eps if name in A.BOUNDED else (None,)):
                jobs.append((name, name, eps, None))
        for src in transfer_from:
            for name in TRANSFER_ATTACKS:
                for eps in cfg.eps:
                    jobs.append((f"transfer-{model_label(src)}-{name}", name, eps, src))
        src_clf: dict[str, Any] = {}
        for attack, base, eps, src in jobs:
            key = attack if eps is None else f"{attack}@{eps:g}"
            st = stats.setdefault(key, {"attack": attack, "eps": eps, "queries": 0,
                                        "seconds": 0.0, "budget_exhausted": False,
                                        "attacked": 0, "oracle": None})
            adv = x.copy()
            blackbox = src is None and base in A.BLACK_BOX
            size = cfg.chunk if blackbox else len(x)
            t_key = time.perf_counter()
            for start in range(0, len(x), size):
                sl = slice(start, start + size)
                rec = done.get((key, start))
                if rec is None:
                    rec = {"key": key, "start": start, "n": len(x[sl]), "queries": 0,
                           "exhausted": False}
                    t0 = time.perf_counter()
                    if src is not None:
                        if str(src) not in src_clf:
                            src_clf[str(src)] = A.tf_classifier(load_keras_model(src), cfg.clip)
                        a = A.white_box(base, src_clf[str(src)], x[sl], y[sl], cfg, eps)
                    elif not blackbox:
                        wb_clf = wb_clf or A.tf_classifier(keras, cfg.clip)
                        a = A.white_box(base, wb_clf, x[sl], y[sl], cfg, eps)
                    elif farm is not None:  # sharded by image over the farm's devices
                        left = None if cfg.budget is None else cfg.budget - st["queries"]
                        a, rec["queries"], rec["exhausted"] = (x[sl], 0, True) if st[
                            "budget_exhausted"] else device.attack_chunk(base, x[sl], y[sl], cfg,
                                                                         eps, start, left)
                    else:
                        spent = st["queries"]
                        counted.budget = None if cfg.budget is None else cfg.budget - spent
                        counted.queries = 0
                        counted.set_context(attack=key, start=start)
                        if st["budget_exhausted"]:
                            a, rec["exhausted"] = x[sl], True
                        else:
                            try:
                                a = A.black_box(base, oracles.art_classifier(counted, cfg.clip),
                                                x[sl], y[sl], cfg, eps)
                            except oracles.BudgetExhausted:
                                a, rec["exhausted"] = x[sl], True
                        rec["queries"] = counted.queries
                    rec["seconds"] = round(time.perf_counter() - t0, 3)
                    rec["adv"] = _b64(a)
                    record(rec)
                adv[sl] = _unb64(rec["adv"], x[sl].shape)
                st["queries"] += rec["queries"]
                st["seconds"] += rec["seconds"]
                st["budget_exhausted"] |= rec["exhausted"]
                st["attacked"] += 0 if rec["exhausted"] else rec["n"]
            st["oracle"] = attack_oracle.name if blackbox else ("gradients of " + (
                model_label(src) if src is not None else label))
            if st["budget_exhausted"]:
                log(f"[attack] {key}: stopped at the query budget ({cfg.budget}); "
                    f"{st['attacked']} of {len(x)} images attacked")
            log(f"[attack] {key}: {time.perf_counter() - t_key:.1f} s, "
                f"{st['queries']} queries" if blackbox else
                f"[attack] {key}: {time.perf_counter() - t_key:.1f} s")
            advs[key] = adv
        result = score(label, g, host, keras_o, device, x, y, advs, stats, cfg)
        if farm is not None:
            result["farm"] = device.report()["farm"]
    result.update({"dataset": dataset, "model_path": str(model_path),
                   "artifact": str(artifact) if artifact else None, "config": cfg.as_dict(),
                   "attack_oracle": attack_oracle.name,
                   "transfer_from": [str(p) for p in transfer_from]})
    from toolchain.robustness.report import diagnose

    result["masking"] = diagnose(result)
    write_text(out / RESULTS, json.dumps(result, indent=2, default=float) + "\n")
    return result


def _robust(clean_ok: np.ndarray, wrong: np.ndarray, linf: np.ndarray, eps: float) -> float:
    return float(np.mean(clean_ok & ~(wrong & (linf <= eps + 1e-9))))


def score(label: str, g: Any, host: oracles.Oracle, keras_o: oracles.Oracle,
          device: oracles.Oracle | None, x: np.ndarray, y: np.ndarray,
          advs: dict[str, np.ndarray], stats: dict[str, dict], cfg: A.AttackConfig) -> dict:
    """Accuracy of every attack at every epsilon on the host model, the Keras model and the
    device; bounded attacks are projected onto the epsilon ball on the input grid."""
    step = float(g.input_format["step"]) if g is not None else None
    mismatches = 0

    def run_all(xe: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool | None]:
        nonlocal mismatches
        hl = host(xe)
        dev = None
        equal = None
        if device is not None:
            dl = device(xe)
            bad = ~np.all(dl == hl, axis=1)
            mismatches += int(bad.sum())
            equal = not bad.any()
            dev = dl.argmax(1)
        return hl.argmax(1), keras_o(xe).argmax(1), dev, equal

    def grid(a: np.ndarray) -> np.ndarray:
        return a if g is None else oracles.ReferenceOracle(g).quantize(a).reshape(a.shape) * step

    ph, pk, pd, eq = run_all(grid(x))
    clean_ok = ph == y
    clean = {"host": float(np.mean(ph == y)), "keras": float(np.mean(pk == y)),
             "device": None if pd is None else float(np.mean(pd == y)), "host_device_equal": eq}
    rows = []
    for key, adv in advs.items():
        st = stats[key]
        eps = st["eps"]
        base = key.split("@")[0].split("-")[-1]
        xa = grid(adv)
        if eps is not None and step is not None:  # project onto the ball on the input grid
            k = math.floor(eps / step + 1e-6) * step
            xa = np.clip(xa, grid(x) - k, grid(x) + k)
        delta = (xa - grid(x)).reshape(len(x), -1)
        linf, l2 = np.abs(delta).max(1), np.sqrt((delta ** 2).sum(1))
        ph, pk, pd, eq = run_all(xa)
        kind = "transfer" if key.startswith("transfer-") else (
            "white-box" if base in A.WHITE_BOX else "black-box")
        common = {"attack": st["attack"], "kind": kind, "norm": A.NORM[base],
                  "queries": st["queries"] if kind == "black-box" else None,
                  "seconds": round(st["seconds"], 3), "budget_exhausted": st["budget_exhausted"],
                  "attacked": st["attacked"], "oracle": st["oracle"],
                  "host_device_equal": eq, "linf_median": float(np.median(linf)),
                  "l2_median": float(np.median(l2))}
        if eps is not None:
            rows.append({**common, "eps": eps, "bounded": True,
                         "acc": {"host": float(np.mean(clean_ok & (ph == y))),
                                 "keras": float(np.mean(clean_ok & (pk == y))),
                                 "device": None if pd is None else
                                 float(np.mean(clean_ok & (pd == y)))}})
            continue
        wrong = {"host": ph != y, "keras": pk != y, "device": None if pd is None else pd != y}
        for e in [*cfg.eps, math.inf]:
            rows.append({**common, "eps": None if e == math.inf else e, "bounded": False,
                         "acc": {k: None if w is None else _robust(clean_ok, w, linf, e)
                                 for k, w in wrong.items()}})
    return {"model": label, "n": int(len(x)), "integer": g is not None,
            "device": device.name if device is not None else None, "clean": clean,
            "rows": rows, "eps": list(cfg.eps), "host_device_mismatches": mismatches}


def check_equal(result: dict) -> None:
    """Raise when the device and the host model disagreed on any input."""
    if result.get("host_device_mismatches"):
        raise StqError(f"{result['host_device_mismatches']} inputs gave different outputs on "
                       f"{result['device']} and the host reference (see results.json)")
