"""`stq experiment`: the method's experiment for one dataset and model family, in cached stages.

train fp / int8 / stq -> per-layer JR search (its chosen candidate is the stq-jr model) ->
Quanos (ANS on the fp model, bits, training) -> convert every variant (and --baseline models)
-> the ensemble (int8 + stq + quanos, one firmware) -> build -> validate on the device ->
attack on the host (bit-exact reference) and replay every adversarial input on the device ->
one report (toolchain/pipeline/experiment_report.py). Every stage is cached by its inputs.
The device stages (toolchain/pipeline/experiment_attack.py) run on one board or, with farm
options, sharded over several through toolchain.farm.

Black-box queries go to the host reference of the same integer model (at the quick budget the
device would take hours); the device column runs every final adversarial input on the board.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from toolchain.errors import StqError
from toolchain.pipeline.stages import Stages, file_hash

BUDGETS = {  # attack settings per budget name (AttackConfig fields)
    "quick": {"limit": 4, "pgd_iter": 5, "pgd_restarts": 1, "cw_iter": 5, "cw_search": 1,
              "square_iter": 20, "boundary_iter": 3, "zoo_iter": 2, "zoo_parallel": 16,
              "chunk": 4},
    "standard": {"limit": 50, "pgd_iter": 40, "cw_iter": 20, "cw_search": 3,
                 "square_iter": 1000, "boundary_iter": 200, "zoo_iter": 20, "chunk": 5},
}
METHOD_ATTACKS = ("fgsm", "pgd", "cw", "square", "boundary", "zoo")  # the method's six
VARIANTS = ("fp", "int8", "stq", "stq-jr", "quanos")
MEMBERS = ("int8", "stq", "quanos")


@dataclass
class ExperimentConfig:
    out: Path = Path("out/experiment")
    model: str = "resnet8"
    dataset: str = "cifar10"
    data_dir: str | None = None
    epochs: int = 2
    limit: int | None = 1500  # training examples per variant
    board: str = "netduinoplus2"
    validate_limit: int = 10
    budget: str = "quick"
    attack_limit: int | None = None  # overrides the budget's image count
    eps: tuple[float, ...] = ()  # default: the dataset's (quick: its 2nd and 4th)
    jr_candidates: int = 2
    baselines: list[str] = field(default_factory=list)
    seed: int = 0
    # the device stages on a board farm (toolchain.farm, docs/farm.md): flashed boards, a
    # devices file, N QEMU boards per model, a Ray cluster; block = inputs per validation item
    ports: tuple[str, ...] = ()
    devices_file: Path | None = None
    qemu: int = 0
    ray: str | None = None
    block: int = 8
    device_queries: bool = False  # black-box queries on the device(s), not the host reference
    convergence: bool | None = None  # half-budget reruns; default: at the standard budget
    command: str | None = None  # how it was invoked (for the report's first line)


@contextlib.contextmanager
def dataset_loaded(ds: Any) -> Iterator[None]:
    """Serve ``ds`` to every ``datasets.load(ds.name)`` in this process (the attack and
    validation APIs load by name, without a data folder)."""
    from toolchain.training import datasets

    old = datasets.DATASETS.get(ds.name)
    datasets.DATASETS[ds.name] = lambda data_dir=None: ds
    try:
        yield
    finally:
        if old is not None:
            datasets.DATASETS[ds.name] = old


def attack_config(cfg: ExperimentConfig) -> Any:
    from toolchain.robustness import registry as R

    if cfg.budget not in BUDGETS:
        raise StqError(f"--budget {cfg.budget!r}: choose {', '.join(BUDGETS)}")
    over = dict(BUDGETS[cfg.budget])
    if cfg.attack_limit:
        over["limit"] = cfg.attack_limit
    # the method's six attacks; PGD at the whole input range (a masking check) always, the
    # half-budget reruns (convergence) at the standard budget only
    base = R.for_dataset(cfg.dataset, budget=cfg.budget, attacks=METHOD_ATTACKS,
                         convergence=cfg.budget != "quick" if cfg.convergence is None
                         else cfg.convergence, sanity=True)
    eps = cfg.eps or (base.eps[1::2] if cfg.budget == "quick" else base.eps)
    return replace(base, eps=tuple(eps), **over).check()


def run_experiment(cfg: ExperimentConfig, log: Any = print) -> dict[str, Any]:
    from toolchain.pipeline.experiment_attack import device_farm, transfer_matrix, validate_models
    from toolchain.training import datasets

    t0 = time.perf_counter()
    out = Path(cfg.out)
    device_farm(cfg, out, None, out)  # bad farm options fail now, before anything is written
    ds = datasets.load(cfg.dataset, cfg.data_dir)
    st = Stages(out, log, 14 + len(cfg.baselines), command="experiment")
    acfg = attack_config(cfg)
    lo = float(min(ds.x_train.min(), ds.x_test.min()))
    hi = float(max(ds.x_train.max(), ds.x_test.max()))
    if lo < acfg.clip[0] or hi > acfg.clip[1]:  # e.g. MFCC features: attack in their range
        acfg = replace(acfg, clip=(lo, hi))
    if ds.x_train.shape[1] != ds.x_train.shape[2] and {"square", "autoattack"} & set(
            acfg.attacks):
        # ART 1.20.1 SquareAttack draws square tiles of the input's height: it fails on
        # non-square inputs (e.g. 49x10 MFCC) with "high <= 0"
        log("[experiment] Square and AutoAttack (which runs Square) skipped: ART's "
            "SquareAttack needs square inputs")
        acfg = replace(acfg, attacks=tuple(a for a in acfg.attacks
                                           if a not in ("square", "autoattack")))
    common = {"cfg": {k: str(v) for k, v in asdict(cfg).items()
                      if k not in ("command", "validate_limit", "budget", "attack_limit", "eps",
                                   "board", "out", "ports", "devices_file", "qemu", "ray",
                                   "block", "device_queries", "baselines", "convergence")}}
    with dataset_loaded(ds):
        models = _train_all(cfg, ds, st, common, out, log)
        convs = {}
        for name, path in models.items():
            if name == "fp":  # float weights: the host Keras model only, never deployed
                continue
            convs[name] = st.run(f"convert-{name}", f"converting {name}",
                                 {"model": file_hash(path)},
                                 lambda p=path, n=name: _convert(p, out / "models" / n))
        for b in cfg.baselines:
            name = "baseline-" + Path(b).stem
            try:
                convs[name] = st.run(f"convert-{name}", f"converting the baseline {b}",
                                     {"model": file_hash(b)},
                                     lambda p=b, n=name: _convert(Path(p), out / "models" / n))
                models[name] = Path(b)
            except StqError as exc:
                log(f"[experiment] baseline {b} not converted: {exc}")
                convs[name] = {"error": str(exc)}
        ens = st.run("ensemble", "linking int8 + stq + quanos into one ensemble",
                     {m: convs[m]["hash"] for m in MEMBERS},
                     lambda: _ensemble(out, convs))
        deployed = {n: out / "models" / n for n in convs if "error" not in convs[n]}
        deployed["ensemble"] = out / "models" / "ensemble"
        builds = st.run("build", f"building {len(deployed)} firmwares for {cfg.board}",
                        {n: file_hash(d / "c") for n, d in deployed.items()},
                        lambda: _build(deployed, cfg.board, out / "build"))
        val = st.run("validate", f"validating {cfg.validate_limit} test inputs of every model "
                                 f"on {cfg.board}",
                     {"builds": {n: file_hash(e) for n, e in builds["elf"].items()},
                      "n": cfg.validate_limit},
                     lambda: validate_models(cfg, ds, deployed, builds, out / "validate"))
        att = st.run("attack", f"attacking every model ({cfg.budget} budget, "
                               f"{acfg.limit} images) on the host, replayed on {cfg.board}",
                     {"builds": {n: file_hash(e) for n, e in builds["elf"].items()},
                      "attack": acfg.as_dict(),
                      **({"device_queries": True} if cfg.device_queries else {})},
                     lambda: _attack_all(cfg, acfg, ds, models, deployed, builds,
                                         out / "attacks", log))
        tm = st.run("transfer", f"transfer matrix: PGD from every model replayed on every other "
                                f"({acfg.limit} images)",
                    {"models": {n: file_hash(p) for n, p in models.items()},
                     "ensemble": ens["hash"], "attack": acfg.as_dict()},
                    lambda: {**transfer_matrix(acfg, ds, models, deployed, log), "files": []})
    from toolchain.pipeline import experiment_report

    summary = {"config": {k: str(v) for k, v in asdict(cfg).items()},
               "dataset": {"name": ds.name, "train": len(ds.x_train), "test": len(ds.x_test),
                           "data_dir": cfg.data_dir},
               "train": {n: str(p) for n, p in models.items()}, "convert": convs,
               "ensemble": ens, "builds": builds, "validate": val, "attacks": att, "transfer": tm,
               "attack_config": acfg.as_dict(), "timings": st.timings, "reused": st.cached}
    qj = out / "quanos" / "quanos.json"
    if qj.is_file():
        import json

        summary["quanos_bits"] = json.loads(qj.read_text())["bits"]
    summary["command"] = cfg.command
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["report"] = {k: str(v) for k, v in
                         experiment_report.write(out / "report", summary).items()}
    return summary


def _train_all(cfg: ExperimentConfig, ds: Any, st: Stages, common: dict, out: Path,
               log: Any) -> dict[str, Path]:
    from toolchain.frontend.keras import load_keras_model
    from toolchain.training import quanos
    from toolchain.training.train import TrainConfig, train

    base = TrainConfig(model=cfg.model, dataset=cfg.dataset, data_dir=cfg.data_dir,
                       epochs=cfg.epochs, limit=cfg.limit, seed=cfg.seed)
    paths: dict[str, Path] = {}
    for v in ("fp", "int8", "stq"):
        r = st.run(f"train-{v}", f"training {cfg.model} {v} ({cfg.epochs} epochs)", common,
                   lambda v=v: _files(asdict(train(replace(base, variant=v), out / "train",
                                                   progress=False, dataset=ds)), "model_path"))
        paths[v] = Path(r["model_path"])
    r = st.run("jr-search", f"per-layer JR search ({cfg.jr_candidates} candidates)", common,
               lambda: _jr(base, ds, cfg, out / "jr_search", log))
    paths["stq-jr"] = Path(r["candidates"][r["best"]]["model_path"])

    def quanos_stage() -> dict[str, Any]:
        fp = load_keras_model(paths["fp"])
        n = min(256, len(ds.x_train))
        rep = quanos.analyze(fp, ds.x_train[:n], ds.y_train[:n], eps=attack_config(cfg).eps[0],
                             out=out / "quanos")
        res = train(replace(base, variant="quanos", bits=rep["bits"]), out / "train",
                    progress=False, dataset=ds)
        return {**rep, **_files(asdict(res), "model_path")}

    r = st.run("quanos", "Quanos: ANS on the fp model, bit widths, training",
               {**common, "fp": file_hash(paths["fp"])}, quanos_stage)
    paths["quanos"] = Path(r["model_path"])
    return paths


def _files(d: dict, key: str) -> dict:
    return {**d, "files": [d[key]]}


def _jr(base: Any, ds: Any, cfg: ExperimentConfig, out: Path, log: Any) -> dict:
    from toolchain.training import jrsearch, zoo

    probe = zoo.MODELS[cfg.model]("stq-jr", input_shape=tuple(ds.x_train.shape[1:]),
                                  classes=ds.classes)
    cands = jrsearch.default_candidates(jrsearch.block_layers(probe), cfg.jr_candidates)
    rep = jrsearch.search(base, out, dataset=ds, candidates=cands,
                          eps=attack_config(cfg).eps[0], score_limit=200, log=log)
    return {**rep, "files": [c["model_path"] for c in rep["candidates"]]}


def _convert(path: Path, outdir: Path) -> dict[str, Any]:
    from toolchain.pipeline.convert import convert

    s = convert(path, outdir)
    return {**s, "files": [s["artifact"], s["c_dir"]]}


def _ensemble(out: Path, convs: dict) -> dict[str, Any]:
    from toolchain.ensemble.generate import from_outdirs

    man = from_outdirs([out / "models" / m for m in MEMBERS], list(MEMBERS),
                       out / "models" / "ensemble")
    return {**man, "files": [str(out / "models" / "ensemble" / "ensemble.json")]}


def _build(deployed: dict[str, Path], board: str, root: Path) -> dict[str, Any]:
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build

    b = load_board(board)
    elfs, usage = {}, {}
    for name, d in deployed.items():
        r = build(d, b, root / name)
        elfs[name], usage[name] = str(r.elf), {k: list(v) for k, v in r.usage.items()}
    return {"elf": elfs, "usage": usage, "files": list(elfs.values())}


def _attack_all(cfg: ExperimentConfig, acfg: Any, ds: Any, models: dict[str, Path],
                deployed: dict[str, Path], builds: dict, root: Path, log: Any) -> dict:
    from toolchain.pipeline.experiment_attack import attack_model
    from toolchain.robustness import evaluate as E

    results = {"fp": E.evaluate(models["fp"], None, acfg, ds.name, root / "fp", label="fp",
                                log=log)}
    for name in deployed:
        elf = Path(builds["elf"][name])
        log(f"[experiment] attacking {name}")
        try:  # the ensemble as one model: its folder is both the model and the artifact
            results[name] = attack_model(models.get(name, deployed[name]), deployed[name], acfg,
                                         ds.name, root / name, cfg.board, elf, name, log, cfg)
        except StqError as exc:  # e.g. a .tflite baseline has no Keras gradients here
            log(f"[experiment] {name} not attacked: {exc}")
            results[name] = {"error": str(exc)}
    return {"results": results, "files": [str(root)]}
