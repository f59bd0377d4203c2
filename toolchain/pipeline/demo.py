"""`stq demo`: the whole mission on the bundled digits data, in cached stages.

train (STQ+JR and an FP baseline) -> convert -> build (QEMU board + one real board) -> budget
(both boards, checked against the linked ELFs) -> validate on the device (bit-exact against
the host reference) -> reduced attacks (PGD white-box, Square black-box with the device as the
oracle) -> one report (toolchain/demo_report.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolchain.errors import StqError
from toolchain.pipeline.stages import Stages, file_hash
from toolchain.resources import firmware_dir

FIRMWARE = firmware_dir()
STAGES = 7
# the quick budget with Square at 30 iterations per image (the report says both): the device
# answers about 14 queries per second under QEMU, so this keeps the stage near 2.5 minutes
ATTACKS = {"attacks": ("pgd", "square"), "eps": (0.1,), "budget": "quick", "square_iter": 30}


@dataclass
class DemoConfig:
    out: Path = Path("out/demo")
    model: Path | None = None  # the user's QKeras model (skips training)
    fp_model: Path | None = None  # an FP baseline to attack for comparison
    dataset: str = "digits"
    data_dir: str | None = None
    board: str = "netduinoplus2"  # the board the firmware runs on (QEMU or, with port, real)
    port: str | None = None  # a real device's serial port / pyserial URL
    real_board: str = "nucleo-l4r5zi"  # also built, linked and budget-checked
    epochs: int = 30
    validate_limit: int = 100
    attack_limit: int = 10
    budget: str = "410KB"
    packing: str = "2bit"
    progress: bool = True  # progress bars (on a terminal only: toolchain/progress.py)


def run_demo(cfg: DemoConfig, log: Any = print) -> dict[str, Any]:
    from toolchain.training import train as training

    out = Path(cfg.out)
    st = Stages(out, log, STAGES, progress=cfg.progress)
    tcfg = training.TrainConfig(model="digits", variant="stq-jr", dataset=cfg.dataset,
                                data_dir=cfg.data_dir, epochs=cfg.epochs)

    def train_one(tc: training.TrainConfig) -> dict[str, Any]:
        r = training.train(tc, out / "train", progress=False, bars=cfg.progress)
        return {**asdict(r), "files": [r.model_path]}

    if cfg.model is None:
        stq = st.run("train", f"training the digits STQ+JR model and an FP baseline "
                              f"({cfg.epochs} epochs each)", {"cfg": asdict(tcfg)},
                     lambda: {"stq": train_one(tcfg),
                              "fp": train_one(training.TrainConfig(**{**asdict(tcfg),
                                                                      "variant": "fp"})),
                              "files": []})
        model_path, fp_path = Path(stq["stq"]["model_path"]), Path(stq["fp"]["model_path"])
        accuracy = {"stq": stq["stq"]["test_accuracy"], "fp": stq["fp"]["test_accuracy"]}
    else:
        st.count += 1
        model_path, fp_path, accuracy = Path(cfg.model), cfg.fp_model, {}
        if not model_path.exists():
            raise StqError(f"--model {model_path} does not exist")
        log(f"[demo 1/{STAGES}] using the model {model_path} (no training)")

    model_dir = out / "model"
    conv = st.run("convert", "converting to the integer artifact and C",
                  {"model": file_hash(model_path), "packing": cfg.packing},
                  lambda: _convert(model_path, model_dir, cfg.packing))
    boards = [cfg.board] + ([cfg.real_board] if cfg.real_board != cfg.board else [])
    builds = st.run("build", f"building the firmware for {', '.join(boards)}",
                    {"artifact": conv["hash"], "boards": boards,
                     "firmware": file_hash(FIRMWARE)},
                    lambda: _build(model_dir, boards, out / "build"))
    budgets = st.run("budget", f"checking the memory budget ({cfg.budget}) on each board",
                     {"artifact": conv["hash"], "elfs": {b: file_hash(e) for b, e in
                                                         builds["elf"].items()},
                      "budget": cfg.budget},
                     lambda: _budget(model_dir, builds["elf"], cfg.budget, out / "budget"))
    elf = Path(builds["elf"][cfg.board])
    val = st.run("validate", f"validating {cfg.validate_limit} test images on "
                             f"{cfg.port or cfg.board} against the host reference",
                 {"artifact": conv["hash"], "elf": file_hash(elf), "n": cfg.validate_limit,
                  "port": cfg.port},
                 lambda: _validate(cfg, model_dir, model_path, elf, out / "validate"))
    att = st.run("attack", "attacking at the quick budget: PGD (white-box) and Square "
                           "(black-box, the device is the oracle)",
                 {"artifact": conv["hash"], "elf": file_hash(elf),
                  "fp": file_hash(fp_path) if fp_path else None, "n": cfg.attack_limit,
                  "port": cfg.port, "attacks": ATTACKS},
                 lambda: _attack(cfg, model_path, fp_path, model_dir, elf, out / "attacks", log))
    summary = {"config": {k: str(v) if isinstance(v, Path) else v
                          for k, v in asdict(cfg).items()},
               "model_path": str(model_path), "accuracy": accuracy, "convert": conv,
               "builds": builds, "budget": budgets, "validate": val, "attacks": att}
    summary["headline"] = headline(summary)
    st.count += 1
    log(f"[demo {st.count}/{STAGES}] writing the report ...")
    from toolchain.pipeline import report as demo_report

    summary["timings"] = st.timings
    summary["reused"] = st.cached
    paths = demo_report.write(out / "report", summary)
    summary["report"] = {k: str(v) for k, v in paths.items()}
    return summary


def _convert(model_path: Path, model_dir: Path, packing: str) -> dict[str, Any]:
    from toolchain.pipeline.convert import convert

    s = convert(model_path, model_dir, packing)
    return {**s, "files": [s["artifact"], s["c_dir"]]}


def _build(model_dir: Path, boards: list[str], root: Path) -> dict[str, Any]:
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build

    elfs, usage = {}, {}
    for name in boards:
        r = build(model_dir, load_board(name), root / name)
        elfs[name], usage[name] = str(r.elf), {k: list(v) for k, v in r.usage.items()}
    return {"elf": elfs, "usage": usage, "files": list(elfs.values())}


def _budget(model_dir: Path, elfs: dict[str, str], budget: str, root: Path) -> dict[str, Any]:
    from toolchain.budget import report as budget_report
    from toolchain.budget.analysis import analyze_outdir, checks, parse_size
    from toolchain.budget.elf import ElfImage, reconcile
    from toolchain.firmware.boards import load_board

    limit = parse_size(budget)
    out: dict[str, Any] = {"limit": limit, "boards": {}, "files": []}
    for name, elf in elfs.items():
        board = load_board(name)
        b = analyze_outdir(model_dir)
        reconcile(b, ElfImage(Path(elf)), board, Path(elf).with_suffix(".map"))
        results = checks(b, limit, board)
        paths = budget_report.write_reports(root / name, b, results, [], limit, name)
        (root / name / "chart.png").write_bytes(budget_report.chart_png(b))
        out["boards"][name] = budget_report.to_json(b, results, [], limit, name)
        out["boards"][name]["chart"] = str(root / name / "chart.png")
        out["files"] += [str(paths["html"]), str(root / name / "chart.png")]
        if not all(c.ok for c in results):
            raise StqError(f"the model does not fit {name}: " + "; ".join(
                c.line() for c in results if not c.ok))
    return out


def _validate(cfg: DemoConfig, model_dir: Path, model_path: Path, elf: Path,
              out: Path) -> dict[str, Any]:
    from toolchain.validate.run import ValidateConfig, validate

    s = validate(ValidateConfig(board=cfg.board, artifact=model_dir, out_dir=out, port=cfg.port,
                                dataset=cfg.dataset, limit=cfg.validate_limit, model=model_path,
                                elf=elf, progress=cfg.progress))
    if s["mismatches"]:
        fm = s["first_mismatch"]
        raise StqError(f"device and host differ on {s['mismatches']} of {s['validated']} "
                       f"inputs; first: input {fm['i']}")
    return {**s, "files": [str(out / "summary.html")]}


def _attack(cfg: DemoConfig, model_path: Path, fp_path: Path | None, model_dir: Path,
            elf: Path, out: Path, log: Any) -> dict[str, Any]:
    from toolchain.reports import robustness as robustness_report
    from toolchain.robustness import evaluate as attacks_eval
    from toolchain.robustness.registry import for_dataset

    # the quick budget (the report says so): Square 50 queries per image, PGD 10 steps
    acfg = for_dataset(cfg.dataset, **ATTACKS, limit=cfg.attack_limit)  # type: ignore[arg-type]
    results = [attacks_eval.evaluate(model_path, model_dir, acfg, cfg.dataset, out / "stq",
                                     board=None if cfg.port else cfg.board, port=cfg.port,
                                     elf=elf, label="STQ+JR (device)", log=log)]
    attacks_eval.check_equal(results[0])
    if fp_path is not None:
        results.insert(0, attacks_eval.evaluate(fp_path, None, acfg, cfg.dataset, out / "fp",
                                                label="FP (host)", log=log))
    paths = robustness_report.write_reports(out / "report", results)
    return {"results": results, "files": [str(p) for p in paths.values()]}


def _acc(result: dict, attack: str, eps: float, who: str) -> dict | None:
    """Accuracy of ``who`` under ``attack`` at ``eps``, with its n, interval and budget."""
    for row in result["rows"]:
        if row["attack"] == attack and abs(float(row.get("eps") or -1) - eps) < 1e-9:
            return {"acc": row["acc"].get(who), "n": row["n"], "ci": row["ci"],
                    "budget": result.get("budget"), "converged": row.get("converged")}
    return None


def headline(s: dict[str, Any]) -> dict[str, Any]:
    v, b = s["validate"], s["budget"]
    board = s["config"]["board"]
    stq = s["attacks"]["results"][-1]
    bj = b["boards"][board]
    from toolchain.training import datasets

    n_test = len(datasets.load(s["config"]["dataset"], s["config"]["data_dir"]).y_test) \
        if s["accuracy"] else None
    return {
        "qkeras_accuracy": s["accuracy"].get("stq"),
        "qkeras_n": n_test,
        "device_n": v.get("validated"),
        "device_accuracy": v.get("device_accuracy"),
        "bit_exact": f"{v['bit_exact']}/{v['validated']}",
        "footprint_bytes": bj["footprint"],
        "budget_bytes": b["limit"],
        "pgd_0.1_device": _acc(stq, "pgd", 0.1, "device"),
        "square_0.1_device": _acc(stq, "square", 0.1, "device"),
        "instructions_per_inference": v.get("mean_instructions"),
    }
