"""Adversarial evaluation of one model: every attack and epsilon (and each at half its budget,
for the convergence check), scored on the host model and (for converted models) checked on the
device, resumable, written to OUT/results.json.

The model under test is the QKeras ``.h5``; with its artifact (``stq convert`` OUTDIR) the
"host" model is the bit-exact integer reference, otherwise the Keras model itself. White-box
attacks use the Keras gradients; black-box attacks query an oracle: the device (--board /
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
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import StqError
from toolchain.fsutil import ensure_writable_dir, write_text
from toolchain.robustness import attacks as A
from toolchain.robustness import oracles, targets
from toolchain.robustness.registry import (
    SEED_STRIDE,
    AttackConfig,
    budget_label,
    describe_budget,
    doubled,
    epsilons,
    get,
    halved,
    per_seed_fields,
    seed_restarts,
)
from toolchain.robustness.scoring import score

CHUNKS = "chunks.jsonl"
QUERIES = "queries.jsonl"
RESULTS = "results.json"


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


def plan(cfg: AttackConfig, transfer_from: tuple[Path, ...]) -> list[dict]:
    """The jobs of one evaluation: every attack at every epsilon (once for minimal-perturbation
    attacks), each again at half its budget, PGD at the whole input range, transfer attacks."""
    jobs = []
    for name in cfg.attacks:
        spec = get(name)
        for eps in epsilons(cfg, name):
            key = name if eps is None else f"{name}@{eps:g}"
            base = {"attack": name, "base": name, "eps": eps, "src": None, "kind": spec.threat,
                    "sanity": False,
                    # restarts as runs with other seeds, each its own chunks (shared by the
                    # half-budget, full and doubled jobs: they differ only in how many)
                    "per_seed": seed_restarts(cfg, name) > 1}
            jobs.append({**base, "key": key, "half": False, "cfg": cfg})
            if cfg.convergence and spec.knob:
                jobs.append({**base, "key": key, "half": True, "cfg": halved(cfg, name)})
    if cfg.sanity and any(get(a).threat == "white-box" for a in cfg.attacks):
        e = cfg.range_eps()
        jobs.append({"attack": "pgd", "base": "pgd", "eps": e, "src": None, "kind": "white-box",
                     "key": f"pgd@{e:g}", "half": False, "sanity": True, "cfg": cfg,
                     "title": "PGD at the whole input range"})
    for src in transfer_from:
        for eps in cfg.eps:
            name = f"transfer-{model_label(src)}-pgd"
            jobs.append({"attack": name, "base": "pgd", "eps": eps, "src": src,
                         "kind": "transfer", "key": f"{name}@{eps:g}", "half": False,
                         "sanity": False, "cfg": cfg, "title": f"PGD transferred from "
                                                                f"{model_label(src)}"})
    seen: set[tuple[str, bool]] = set()
    unique = []
    for j in jobs:  # e.g. --eps 1 and the whole-range PGD
        if (j["key"], j["half"]) not in seen:
            seen.add((j["key"], j["half"]))
            unique.append(j)
    return unique


def evaluate(model_path: Path, artifact: Path | None, cfg: AttackConfig, dataset: str,
             out: Path, backend: str = "reference", board: str | None = None,
             port: str | None = None, elf: Path | None = None,
             transfer_from: tuple[Path, ...] = (), label: str | None = None,
             log: Callable[[str], None] = print, keras_model: Any = None,
             inputs: tuple[np.ndarray, np.ndarray] | None = None, progress: bool = False,
             transfer: tuple[Path, ...] = (), farm: Any = None, replay: bool = False,
             data_dir: Path | None = None, link_timeout: float | None = None,
             give_up_after: float | None = None) -> dict:
    """Run every configured attack (resuming from OUT/chunks.jsonl) and score it; returns
    (and writes to OUT/results.json) the result. ``keras_model`` overrides loading the .h5;
    ``inputs`` (x in [0, 1], y) replace the dataset's test split (read from ``data_dir``);
    ``transfer`` adds the transfer matrix of this model and those
    (toolchain.robustness.transfer); a .tflite model is attacked white-box through its float
    twin (robustness/twin.py), its black-box attacks query the integer oracles. ``farm`` (a
    toolchain.farm FarmSpec): black-box attacks one image per work item over its devices
    (toolchain.farm.attack), the same bytes on any number of devices; with ``replay`` the
    adversarial inputs are those of a host run's chunks.jsonl copied into OUT (`stq
    experiment`): nothing is attacked per image, the farm only scores them. An ensemble folder
    as ``artifact`` (toolchain/ensemble) is attacked as one model: white-box through its
    members' averaged logits, black-box and scored on its exact combination, compared with the
    ensemble firmware on a device (robustness/targets.py)."""
    from toolchain.frontend.keras import load_keras_model
    from toolchain.reference import model as reference
    from toolchain.robustness.masking import diagnose

    cfg.check()
    if inputs is None:
        from toolchain.training import datasets

        ds = datasets.load(dataset, data_dir)
        inputs = (ds.x_test, ds.y_test)
    x = np.asarray(inputs[0][:cfg.limit], np.float32)
    y = np.asarray(inputs[1][:cfg.limit], np.int64)
    ensemble = targets.is_ensemble(artifact)
    g = None if artifact is None or ensemble else reference.load_artifact_dir(artifact)
    if ensemble and keras_model is None:  # white-box: the members' averaged logits
        keras_model = targets.ensemble_keras(Path(artifact))  # type: ignore[arg-type]
    if Path(model_path).suffix.lower() == ".tflite" and keras_model is None:
        from toolchain.robustness import twin  # white-box through the IR's float twin

        keras_model, x, cfg = twin.for_attack(g, x, cfg, f"{Path(model_path).name} on {dataset}")
    keras = keras_model if keras_model is not None else load_keras_model(model_path)
    shape = tuple(int(d) for d in keras.input_shape[1:])
    oracles.check_inputs(x, y, shape, int(keras.output_shape[-1]), cfg.clip, "inputs")
    ensure_writable_dir(out)
    target = targets.load(artifact, keras, g)
    g, host = target.g, target.host
    keras_o = oracles.KerasOracle(keras, "keras")
    label = label or model_label(model_path)
    per_image = farm is not None and not replay
    not_identity = {"converge_up_to", *per_seed_fields()}
    run_id = json.dumps({"model": str(Path(model_path).resolve()), "dataset": dataset,
                         # how far budgets may be doubled, and how many per-seed restarts
                         # run, do not change any attack's chunks; a field added later, at its
                         # default, leaves older runs resumable
                         "cfg": {k: v for k, v in cfg.as_dict().items()
                                 if k not in not_identity
                                 and not (k in _AT_DEFAULT and _AT_DEFAULT[k] == v)},
                         "transfer": [str(p) for p in transfer_from],
                         "x": _digest(x, y),
                         **({"per_image": True} if per_image else {})},
                        sort_keys=True, default=str)
    done = _read_chunks(out / CHUNKS, run_id)
    if done:
        log(f"[attack] resuming: {len(done)} finished chunks in {out / CHUNKS}")
    jobs = plan(cfg, transfer_from)
    with ExitStack() as stack:
        device = stack.enter_context(targets.open_device(
            target, artifact, backend, board, port, elf, out, farm, (link_timeout, give_up_after)))
        attack_oracle = device if device is not None else host
        chunks_f = stack.enter_context(open(out / CHUNKS, "a"))
        counted = oracles.CountedOracle(attack_oracle, None, out / QUERIES, {"model": label})
        stack.callback(counted.close)
        clfs: dict[str, Any] = {}

        def classifier(job: dict) -> Any:
            if job["kind"] == "black-box":
                return oracles.art_classifier(counted, cfg.clip)
            name = str(job["src"]) if job["src"] is not None else job["attack"]
            if name not in clfs:
                m = keras if job["src"] is None else load_keras_model(job["src"])
                if job["attack"] == "pgd-bpda":
                    m, replaced = A.bpda_model(m, x[:8])
                    log(f"[attack] BPDA: straight-through gradient for layers "
                        f"{', '.join(replaced) or 'none (every layer has a gradient)'}")
                clfs[name] = A.tf_classifier(m, cfg.clip, cfg.eot if job["attack"] ==
                                             "pgd-bpda" else 1)
            return clfs[name]

        bar = _progress(len(jobs), progress)

        def run(job: dict) -> None:
            _run_job(job, x, y, done, counted, classifier, chunks_f, run_id, log,
                     device if per_image else None)
            job["oracle"] = attack_oracle.name if job["kind"] == "black-box" else (
                "gradients of " + (model_label(job["src"]) if job["src"] else label))
            job["budget"] = describe_budget(replace(job["cfg"], attacks=(job["base"],)))[
                job["base"]] + (f"; at most {cfg.max_queries:,} queries"
                                if cfg.max_queries and job["kind"] == "black-box" else "")
            if job.get("factor", 1) > 1:
                job["budget"] += (f" ({job['factor']}x the {cfg.budget} budget: doubled until "
                                  "converged)")
            bar.update(1)

        for job in jobs:
            run(job)
        while True:
            # each cell's own factor: one that converged at 1x can fail later, when the closure
            # over epsilons brings in another epsilon's doubled run
            todo = [j for j in _not_converged(score(label, g, host, keras_o, None, x, y, jobs,
                                                    cfg), jobs)
                    if 2 * j.get("factor", 1) <= cfg.converge_up_to]
            if not todo:
                break
            bar.total += len(todo)
            for job in todo:  # this run becomes the half of one at twice its budget
                factor = 2 * job.get("factor", 1)
                log(f"[attack] {job['key']}: not converged at {factor // 2}x the budget; "
                    f"running it at {factor}x")
                jobs.remove(next(j for j in jobs if j["half"] and j["key"] == job["key"]))
                job["half"] = True
                twice = doubled(job["cfg"], job["base"])
                # the key names the doubled budget, so another code version's doublings (which
                # may count factors differently) are never mistaken for this one's
                new = {**job, "half": False, "cfg": twice, "factor": factor,
                       "tag": f"*{factor}:{budget_label(twice, job['base'])}"}
                run(new)
                jobs.insert(jobs.index(job) + 1, new)  # the report keeps the table's order
        bar.close()
        result = score(label, g, host, keras_o, device, x, y, jobs, cfg)
        if farm is not None:
            result["farm"] = device.report()["farm"]
    result.update({"dataset": dataset, "model_path": str(model_path),
                   "artifact": str(artifact) if artifact else None, "config": cfg.as_dict(),
                   "budget": cfg.budget, "attack_oracle": attack_oracle.name,
                   "transfer_from": [str(p) for p in transfer_from]})
    if transfer:
        from toolchain.robustness import transfer as T

        result["transfer_matrix"] = T.matrix([(label, keras), *T.load_models(list(transfer))],
                                             cfg, x, y, log)
    result["masking"] = diagnose(result)
    write_text(out / RESULTS, json.dumps(result, indent=2, default=float) + "\n")
    return result


_AT_DEFAULT: dict[str, object] = {"square_restarts": 1}  # fields newer than committed runs


def _not_converged(result: dict, jobs: list[dict]) -> list[dict]:
    """The full-budget jobs with a row the convergence check failed (a minimal-perturbation
    attack's one job when any of its epsilons failed), whose budget can be doubled."""
    keys = {r["attack"] if not r["bounded"] else f"{r['attack']}@{r['eps']:g}"
            for r in result["rows"] if r.get("converged") is False and not r.get("sanity")}
    return [j for j in jobs if not j["half"] and j["key"] in keys and get(j["base"]).knob
            and j["kind"] != "transfer"]


def _digest(x: np.ndarray, y: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()[:16]


def _progress(total: int, on: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="attacks", unit="run", disable=not on, leave=False)


def _run_job(job: dict, x: np.ndarray, y: np.ndarray, done: dict, counted: Any,
             classifier: Callable[[dict], Any], chunks_f: Any, run_id: str,
             log: Callable[[str], None], farm_device: Any = None) -> None:
    """Run (or resume) one job chunk by chunk; fills job adv, queries, seconds, attacked.
    With ``farm_device`` (a toolchain.farm FarmOracle) a black-box chunk is attacked one image
    per work item over the farm's devices. A per-seed restart job runs (or reuses) each of its
    restarts' chunks and keeps, per image, the smallest misclassifying perturbation; restart
    0's chunks are those of the plain run at the same configuration (key without tag), restart
    r's are keyed ``#r<r>``."""
    cfg: AttackConfig = job["cfg"]
    rkey = job["key"] + job.get("tag", "") + ("~half" if job["half"] else "")
    restarts = seed_restarts(cfg, job["base"]) if job.get("per_seed") else 0
    blackbox = job["kind"] == "black-box"
    size = cfg.chunk if blackbox else len(x)
    adv = x.copy()
    job.update(queries=0, seconds=0.0, exhausted=False, attacked=0)
    t_key = time.perf_counter()

    def labels(a: np.ndarray) -> list[int]:  # the attack's own oracle: which misclassify
        return [int(p) for p in classifier(job).predict(a).argmax(1)]

    def chunk(key: str, run_cfg: AttackConfig, start: int, predict: bool) -> dict:
        rec = done.get((key, start))
        if rec is not None:
            if predict and "pred" not in rec:  # a plain run's chunk as restart 0
                counted.budget, counted.queries = None, 0
                counted.set_context(attack=key, start=start)
                rec["pred"] = labels(_unb64(rec["adv"], x[start:start + size].shape))
            return rec
        sl = slice(start, start + size)
        rec = {"key": key, "start": start, "n": len(x[sl]), "queries": 0, "exhausted": False}
        t0 = time.perf_counter()
        if blackbox:
            counted.budget = None if cfg.max_queries is None else \
                cfg.max_queries - job["queries"]
            counted.queries = 0
            counted.set_context(attack=key, start=start)
            if job["exhausted"]:
                a, rec["exhausted"] = x[sl], True
            elif farm_device is not None:  # sharded by image over the farm's devices
                a, q, rec["exhausted"] = farm_device.attack_chunk(
                    job["base"], x[sl], y[sl], run_cfg, job["eps"], start, counted.budget)
                counted.queries = q
            else:
                try:
                    a = A.run(job["base"], classifier(job), x[sl], y[sl], run_cfg, job["eps"])
                except oracles.BudgetExhausted:
                    a, rec["exhausted"] = x[sl], True
        else:
            a = A.run(job["base"], classifier(job), x[sl], y[sl], run_cfg, job["eps"])
        if predict:
            rec["pred"] = labels(a)
        if blackbox:
            rec["queries"] = counted.queries
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        rec["adv"] = _b64(a)
        chunks_f.write(json.dumps({"run": run_id, **rec}) + "\n")
        chunks_f.flush()
        done[(key, start)] = rec  # a later job of the same restarts reuses it
        return rec

    for start in range(0, len(x), size):
        sl = slice(start, start + size)
        if restarts:
            field = get(job["base"]).restarts
            recs = [chunk(job["key"] + (f"#r{r}" if r else ""),
                          replace(cfg, seed=cfg.seed + r * SEED_STRIDE, **{field: 1}),
                          start, True) for r in range(restarts)]
            adv[sl] = smallest_adversarial(x[sl], y[sl], [
                (_unb64(r["adv"], x[sl].shape), np.asarray(r["pred"])) for r in recs])
        else:
            recs = [chunk(rkey, cfg, start, False)]
            adv[sl] = _unb64(recs[0]["adv"], x[sl].shape)
        for rec in recs:
            job["queries"] += rec["queries"]
            job["seconds"] += rec["seconds"]
            job["exhausted"] |= rec["exhausted"]
        job["attacked"] += 0 if recs[0]["exhausted"] else recs[0]["n"]
    job["adv"] = adv
    if job["exhausted"]:
        log(f"[attack] {rkey}: stopped at the query budget ({cfg.max_queries}); "
            f"{job['attacked']} of {len(x)} images attacked")
    took = time.perf_counter() - t_key
    what = f" ({restarts} restarts)" if restarts else ""
    log(f"[attack] {rkey}{what}: {took:.1f} s, {job['queries']} queries" if blackbox else
        f"[attack] {rkey}{what}: {took:.1f} s")


def smallest_adversarial(x: np.ndarray, y: np.ndarray,
                         runs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per image, of the runs' (adversarial inputs, their predicted labels) the misclassifying
    one with the smallest L2 perturbation (the earliest run on a tie); the first run's input
    where none misclassifies."""
    out = runs[0][0].copy()
    best = np.full(len(x), np.inf)
    for a, pred in runs:
        norm = np.sqrt(((a - x).reshape(len(x), -1).astype(np.float64) ** 2).sum(1))
        take = (pred != y) & (norm < best)
        out[take] = a[take]
        best[take] = norm[take]
    return out


def check_equal(result: dict) -> None:
    """Raise when the device and the host model disagreed on any input."""
    if result.get("host_device_mismatches"):
        raise StqError(f"{result['host_device_mismatches']} inputs gave different outputs on "
                       f"{result['device']} and the host reference (see results.json)")
