"""Attacks of `stq experiment`: one model through toolchain.robustness.evaluate (queries on the
host reference, then every adversarial input replayed on the device), and the ensemble
(white-box on the Keras model averaging the members' logits, black-box on the host integer
ensemble, every adversarial input replayed on the ensemble firmware)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


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
