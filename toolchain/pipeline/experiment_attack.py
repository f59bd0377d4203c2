"""The device stages of `stq experiment`: every model validated on the device, and attacked
through toolchain.robustness.evaluate (queries on the host reference, then every adversarial
input replayed on the device).

With farm options (``--qemu N``, repeated ``--port``, ``--devices FILE``, ``--ray``) each
model's device work is sharded through toolchain.farm exactly as `stq validate` and `stq
attack` shard it (validation by blocks of inputs, the replay's scoring by inputs), so the
files equal a one-device run's; each model's farm report (per-device throughput, retries,
failures) is kept beside its results. The ensemble firmware (its own protocol,
toolchain/ensemble/device.py) is validated on one ``--board`` device."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from toolchain.errors import StqError


def device_farm(cfg: Any, artifact: Path, elf: Path | None, work: Path) -> Any:
    """The FarmSpec of one model's device stage (its firmware ``elf`` on every emulated board),
    or None for the plain one-device path (``--board``, or a single ``--port``)."""
    from toolchain.farm.cli import checked
    from toolchain.farm.pool import FarmSpec

    return checked(FarmSpec(board=cfg.board, artifact=artifact, work_dir=work,
                            ports=tuple(cfg.ports), devices_file=cfg.devices_file, qemu=cfg.qemu,
                            elf=elf, ray=cfg.ray, block=cfg.block, progress=False))


def single_port(cfg: Any, farm: Any) -> str | None:
    return cfg.ports[0] if farm is None and cfg.ports else None


def validate_models(cfg: Any, ds: Any, deployed: dict[str, Path], builds: dict,
                    root: Path) -> dict[str, Any]:
    from toolchain.ensemble import combine, device
    from toolchain.reference import model as reference
    from toolchain.validate.run import ValidateConfig, validate

    res: dict[str, Any] = {}
    for name, d in deployed.items():
        elf = Path(builds["elf"][name])
        farm = None
        if name == "ensemble":
            ens = combine.load(d)
            xq = reference.quantize_input(ens.g, ds.x_test[:cfg.validate_limit])
            s = device.validate(ens, xq, elf, root / name, board=cfg.board, labels=ds.y_test)
        else:
            shutil.rmtree(root / name, ignore_errors=True)
            farm = device_farm(cfg, d, elf, root / name)
            inputs = _tflite_inputs(d, ds.x_test[:cfg.validate_limit], root / f"{name}.npy")
            try:
                s = validate(ValidateConfig(board=cfg.board, artifact=d, out_dir=root / name,
                                            port=single_port(cfg, farm), farm=farm,
                                            dataset=None if inputs else ds.name,
                                            inputs=inputs, limit=cfg.validate_limit,
                                            elf=elf, progress=False))
            except StqError as exc:  # e.g. no device of the farm runs this model's firmware
                raise StqError(f"validating {name}: {exc}") from None
        if s["mismatches"]:
            raise StqError(f"{name}: device and host differ on {s['mismatches']} of "
                           f"{s['validated']} inputs")
        res[name] = {k: s.get(k) for k in ("validated", "bit_exact", "mismatches",
                                            "device_accuracy", "mean_instructions")}
        if farm is not None:
            res[name]["farm"] = s["session"]["farm"]
    return res


def _tflite_inputs(outdir: Path, x: Any, path: Path) -> Path | None:
    """For a converted .tflite baseline: the [0, 1] test images mapped onto its real input range
    (robustness/twin.py; the MLPerf ResNet-8 takes pixels 0..255) and quantized, as an .npy for
    `stq validate --inputs`; None for any other model (validated on the dataset itself)."""
    import json

    import numpy as np

    from toolchain.reference import model as reference
    from toolchain.robustness.twin import input_range

    conv = Path(outdir) / "convert.json"
    src = json.loads(conv.read_text()).get("source") if conv.is_file() else None
    if not src or not str(src).lower().endswith(".tflite"):
        return None
    g = reference.load_artifact_dir(outdir)
    lo, hi = input_range(g)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, reference.quantize_input(g, lo + np.asarray(x, np.float32) * (hi - lo)))
    return path


def attack_model(model: Path, outdir: Path, acfg: Any, dataset: str, out: Path, board: str,
                 elf: Path, label: str, log: Any, cfg: Any = None) -> dict:
    """One model attacked on the host, every adversarial input replayed on the device (on the
    farm of ``cfg``'s options, if any); with ``cfg.device_queries`` the black-box attacks query
    the device (on a farm: one image's whole attack per work item, toolchain.farm.attack)."""
    from toolchain.robustness import evaluate as E
    from toolchain.robustness.targets import is_ensemble

    ens = is_ensemble(outdir)  # the ensemble firmware runs on one --board device
    if cfg is not None and cfg.device_queries:
        dev_dir = out / "device-queries"
        farm = None if ens else device_farm(cfg, outdir, elf, dev_dir)
        port = None if ens else single_port(cfg, farm)
        res = E.evaluate(model, outdir, acfg, dataset, dev_dir, board=None if port else board,
                         port=port, elf=elf, label=label, log=log, farm=farm)
        res["attack_oracle"] = f"black-box queries on {res['device']}"
        return res
    host = E.evaluate(model, outdir, acfg, dataset, out / "host", label=label, log=log)
    dev_dir = out / "device"
    dev_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "host" / E.CHUNKS, dev_dir / E.CHUNKS)  # replay, do not re-attack
    farm = None if cfg is None or ens else device_farm(cfg, outdir, elf, dev_dir)
    port = None if cfg is None or ens else single_port(cfg, farm)
    res = E.evaluate(model, outdir, acfg, dataset, dev_dir, board=None if port else board,
                     port=port, elf=elf, label=label, log=log, farm=farm, replay=True)
    res["host_only"] = {"clean": host["clean"], "attack_oracle": host["attack_oracle"]}
    res["attack_oracle"] = "reference (host); adversarial inputs replayed on " + (
        str(res["device"]) if farm is not None or port else str(board))
    return res


def transfer_matrix(acfg: Any, ds: Any, models: dict[str, Path], deployed: dict[str, Path],
                    log: Any) -> dict:
    """PGD crafted on the gradients of every model (the ensemble: its members' averaged
    logits), replayed on every other; each target scored on its bit-exact integer host model
    (the fp model: on Keras), on the first ``acfg.limit`` test images."""
    import numpy as np

    from toolchain.frontend.keras import load_keras_model
    from toolchain.robustness import targets
    from toolchain.robustness import transfer as T

    pairs, scored = [], []
    for name, d in {"fp": None, **deployed}.items():
        src = models.get(name)
        if name != "ensemble" and (src is None or Path(src).suffix.lower() == ".tflite"):
            continue  # a .tflite baseline has no Keras gradients of its own here
        keras = targets.ensemble_keras(d) if name == "ensemble" else load_keras_model(src)
        pairs.append((name, keras))
        scored.append(targets.load(d, keras).host)
    x = np.asarray(ds.x_test[:acfg.limit], np.float32)
    y = np.asarray(ds.y_test[:acfg.limit], np.int64)
    return T.matrix(pairs, acfg, x, y, log, scored_on=scored)
