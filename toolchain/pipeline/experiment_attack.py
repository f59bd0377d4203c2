"""Attacks of `stq experiment`: one model through toolchain.robustness.evaluate (queries on the
host reference, then every adversarial input replayed on the device), and the ensemble
(white-box on the Keras model averaging the members' logits, black-box on the host integer
ensemble, every adversarial input replayed on the ensemble firmware)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import StqError


def attack_model(model: Path, outdir: Path, acfg: Any, dataset: str, out: Path, board: str,
                 elf: Path, label: str, log: Any) -> dict:
    from toolchain.robustness import evaluate as E

    host = E.evaluate(model, outdir, acfg, dataset, out / "host", label=label, log=log)
    dev_dir = out / "device"
    dev_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "host" / E.CHUNKS, dev_dir / E.CHUNKS)  # replay, do not re-attack
    res = E.evaluate(model, outdir, acfg, dataset, dev_dir, board=board, elf=elf, label=label,
                     log=log)
    res["host_only"] = {"clean": host["clean"], "attack_oracle": host["attack_oracle"]}
    res["attack_oracle"] = "reference (host); adversarial inputs replayed on " + str(board)
    return res


def attack_ensemble(ens_dir: Path, members: list[Path], acfg: Any, ds: Any, out: Path,
                    board: str, elf: Path, log: Any) -> dict:
    from toolchain.ensemble import combine, device
    from toolchain.frontend.keras import load_keras_model
    from toolchain.robustness import attacks as A
    from toolchain.robustness import oracles
    from toolchain.robustness.evaluate import score

    ens = combine.load(ens_dir)
    kens = device.keras_ensemble([load_keras_model(p) for p in members])
    x = ds.x_test[:acfg.limit].astype(np.float32)
    y = ds.y_test[:acfg.limit].astype(np.int64)
    host = device.EnsembleOracle(ens)
    Path(out).mkdir(parents=True, exist_ok=True)
    counted = oracles.CountedOracle(host, None, Path(out) / "queries.jsonl", {"model": "ens"})
    wb = A.tf_classifier(kens, acfg.clip)
    advs, stats = {}, {}
    for name in acfg.attacks:
        for eps in (acfg.eps if name in A.BOUNDED else (None,)):
            key = name if eps is None else f"{name}@{eps:g}"
            t0 = time.perf_counter()
            counted.queries = 0
            if name in A.WHITE_BOX:
                adv = A.white_box(name, wb, x, y, acfg, eps)
            else:
                adv = A.black_box(name, oracles.art_classifier(counted, acfg.clip), x, y, acfg,
                                  eps)
            advs[key] = adv
            stats[key] = {"attack": name, "eps": eps, "queries": counted.queries,
                          "seconds": time.perf_counter() - t0, "budget_exhausted": False,
                          "attacked": len(x), "oracle": "reference ensemble" if
                          name in A.BLACK_BOX else "gradients of the averaged Keras ensemble"}
            log(f"[attack] ensemble {key}: {stats[key]['seconds']:.1f} s")
    counted.close()
    with device.open_device(ens, board, None, elf, Path(out)) as dev:
        res = score("ensemble", ens.g, host, oracles.KerasOracle(kens, "keras"), dev, x, y,
                    advs, stats, acfg)
    res.update({"dataset": ds.name, "model_path": str(ens_dir), "artifact": str(ens_dir),
                "config": acfg.as_dict(), "attack_oracle":
                "reference ensemble (host); adversarial inputs replayed on " + str(board)})
    if res.get("host_device_mismatches"):
        raise StqError(f"ensemble: {res['host_device_mismatches']} adversarial inputs differ "
                       f"between {board} and the host ensemble")
    return res
