"""The robustness report: one or more models' attack results (OUT/results.json of `stq attack`)
as HTML (toolchain.reports), Markdown and JSON: accuracy per attack and epsilon in the attack's
own norm with n and 95 % intervals, the budgets, convergence, L2 curves and minimal
perturbations, host vs device, queries, the gradient-masking checks and the transfer matrix.
Written atomically (toolchain.fsutil)."""

from __future__ import annotations

import json
from pathlib import Path

from toolchain import reports
from toolchain.errors import StqError
from toolchain.fsutil import write_text
from toolchain.reports import Section, Table, figures
from toolchain.robustness.masking import diagnose

ORDER = ("fp", "int8", "stq", "stq-jr")
NORM = {"linf": "L-inf", "l2": "L2"}
RESULT_KEYS = ("model", "n", "clean", "rows", "eps", "l2_eps")
ROW_KEYS = ("attack", "title", "kind", "norm", "eps", "acc", "n", "robust", "ci", "budget")


def _check_shape(res: object, p: Path) -> dict:
    """One clear line when a file is not a results.json of this stq."""
    if not isinstance(res, dict):
        raise StqError(f"{p} is not a `stq attack` results.json (a JSON object with "
                       f"{', '.join(RESULT_KEYS)})")
    missing = [k for k in RESULT_KEYS if k not in res]
    rows = res.get("rows")
    if not missing and isinstance(rows, list):
        missing = sorted({k for r in rows if isinstance(r, dict) for k in ROW_KEYS
                          if k not in r} | ({"rows[]"} if any(not isinstance(r, dict)
                                                              for r in rows) else set()))
        missing = [f"rows[].{k}" for k in missing]
    elif not missing:
        missing = ["rows (a list)"]
    if missing:
        raise StqError(f"{p} is not a `stq attack` results.json of this stq version (missing "
                       f"{', '.join(missing)}); run `stq attack` again")
    return res


def load_results(dirs: list[Path]) -> list[dict]:
    out = []
    for d in dirs:
        p = Path(d) if Path(d).suffix == ".json" else Path(d) / "results.json"
        try:
            out.append(_check_shape(json.loads(p.read_text()), p))
        except FileNotFoundError:
            raise StqError(f"{p} not found: run `stq attack ... -o {d}` first") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StqError(f"{p} is not valid JSON ({exc})") from None
    merged: dict[str, dict] = {}
    for r, d in zip(out, dirs, strict=True):
        merged[r["model"]] = merge_runs(merged[r["model"]], r, d) if r["model"] in merged else r
    return sorted(merged.values(), key=lambda r: (ORDER.index(r["model"]) if r["model"] in
                                                  ORDER else 99, r["model"]))


def _row_key(r: dict) -> tuple:
    return (r["attack"], r["norm"], r["eps"], bool(r.get("sanity")))


def merge_runs(a: dict, b: dict, where: Path) -> dict:
    """Two runs of one model on the same inputs (e.g. one attack re-run at a larger budget, or
    at the epsilons where it did not converge): ``b``'s rows replace ``a``'s of the same
    attack, norm and epsilon (a whole-range sanity run only another sanity run), the others are
    kept; ``b``'s epsilons must be among ``a``'s. The masking checks are re-run on the merged
    rows; each row keeps the budget it ran at (the report's budget table lists them)."""
    from toolchain.robustness.masking import diagnose

    for k in ("dataset", "n"):
        if a.get(k) != b.get(k):
            raise StqError(f"{where}: a second result set for model {a['model']} with another "
                           f"{k} ({b.get(k)} against {a.get(k)}); give it another --label")
    for k, flag in (("eps", "--eps"), ("l2_eps", "--l2-eps")):
        extra = [e for e in b.get(k) or [] if e not in (a.get(k) or [])]
        if extra:
            raise StqError(f"{where}: a second result set for model {a['model']} at {k} "
                           f"{', '.join(f'{e:g}' for e in extra)}, which the first "
                           f"({', '.join(f'{e:g}' for e in a.get(k) or [])}) has not: run it "
                           f"with {flag} among the first run's, or give it another --label")
    if a["clean"]["host"] != b["clean"]["host"]:
        raise StqError(f"{where}: a second result set for model {a['model']} on other inputs "
                       "(its clean accuracy differs); give it another --label")
    new = {_row_key(r): r for r in b["rows"]}
    rows = [new.pop(_row_key(r), r) for r in a["rows"]]  # in the table's order
    # attacks the first run had not, before its whole-range sanity run (which closes the table)
    at = next((i for i, r in enumerate(rows) if r.get("sanity")), len(rows))
    rows[at:at] = [r for r in b["rows"] if _row_key(r) in new]
    m = {**a, "rows": rows,
         "host_device_mismatches": a.get("host_device_mismatches", 0)
         + b.get("host_device_mismatches", 0),
         "merged_from": [*a.get("merged_from", [a.get("model_path")]), str(where)]}
    m["masking"] = diagnose(m)
    return m


def fmt_acc(acc: float | None, ci: tuple[float, float] | list[float] | None = None,
            robust: int | None = None, n: int | None = None) -> str:
    if acc is None:
        return "-"
    s = f"{acc:.3f}"
    if robust is not None and n is not None:
        s += f" ({robust}/{n})"
    if ci is not None:
        s += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return s


def _eps(r: dict) -> str:
    if r["eps"] is None:
        return "unbounded"
    return f"{r['eps']:g}" + (" (whole range)" if r.get("sanity") else "")


def _keys(results: list[dict]) -> list[tuple[str, str, float | None]]:
    seen: dict[tuple[str, str, float | None], str] = {}
    for res in results:
        for r in res["rows"]:
            seen.setdefault((r["attack"], r["norm"], r["eps"]), r["title"])
    return list(seen)


def _row(res: dict, attack: str, norm: str, eps: float | None) -> dict | None:
    return next((r for r in res["rows"] if (r["attack"], r["norm"], r["eps"]) ==
                 (attack, norm, eps)), None)


def _title(results: list[dict], attack: str) -> str:
    return next(r["title"] for res in results for r in res["rows"] if r["attack"] == attack)


def _budget_rows(results: list[dict]) -> list[list[str]]:
    """One row per attack and budget it ran at; "where" names the epsilons (and models) of
    each budget when an attack ran at more than one (a merged re-run), else "everywhere"."""
    runs: dict[str, dict[str, list[tuple[str, dict]]]] = {}
    for res in results:
        for r in res["rows"]:
            if not r.get("sanity"):
                runs.setdefault(r["attack"], {}).setdefault(str(r["budget"]), []).append(
                    (res["model"], r))
    out = []
    for by_budget in runs.values():
        for budget, where in by_budget.items():
            r = where[0][1]
            place = "everywhere"
            if len(by_budget) > 1:  # epsilons grouped by the models that ran them so
                at: dict[str, list[str]] = {}
                for m, x in where:
                    at.setdefault(_eps(x), []).append(m)
                groups: dict[tuple[str, ...], list[str]] = {}
                for e, ms in at.items():
                    groups.setdefault(tuple(ms), []).append(e)
                place = "; ".join(
                    f"epsilon {', '.join(es)}" + ("" if len(ms) == len(results)
                                                  else f" ({', '.join(ms)})")
                    for ms, es in groups.items())
            out.append([r["title"], r["kind"], NORM[r["norm"]], budget, place])
    return out


def tables(results: list[dict]) -> dict[str, Table]:
    models = [f"{r['model']} (n={r['n']})" for r in results]
    acc = [["clean", "-", "-", *[fmt_acc(r["clean"]["host"], r["clean"].get("ci"),
                                         round(r["clean"]["host"] * r["n"]), r["n"])
                                 for r in results]]]
    for attack, norm, eps in _keys(results):
        cells = []
        for res in results:
            r = _row(res, attack, norm, eps)
            cells.append("-" if r is None else fmt_acc(r["acc"]["host"], r["ci"], r["robust"],
                                                       r["n"]) +
                         (" (not converged)" if r.get("converged") is False else ""))
        first = next(r for res in results if (r := _row(res, attack, norm, eps)))
        acc.append([first["title"], NORM[norm], _eps(first), *cells])
    t: dict[str, Table] = {}
    t["accuracy"] = Table(["attack", "norm", "epsilon", *models], acc, id="accuracy",
                          numeric_from=2, note="Robust accuracy on the host model (robust/n) "
                          "[Wilson 95 % interval]. L-inf attacks are scored at L-inf epsilons, "
                          "L2 attacks at L2 epsilons; minimal-perturbation attacks count an "
                          "image as broken at epsilon when the perturbation they found is "
                          "within it.")
    attacks = list(dict.fromkeys(a for a, _, _ in _keys(results)))
    t["budget"] = Table(["attack", "threat model", "norm", "what the budget runs", "where"],
                        _budget_rows(results), id="budget", numeric_from=99,
                        note="Budgets: " + ", ".join(sorted({str(r.get("budget", "?"))
                                                             for r in results})))
    conv = []
    for res in results:
        for r in res["rows"]:
            if r.get("half_acc") is not None:
                run = r.get("run_acc")  # absent in results made before it was kept
                conv.append([res["model"], r["title"], NORM[r["norm"]], _eps(r),
                             f"{r['half_acc']:.3f}", "-" if run is None else f"{run:.3f}",
                             f"{r['acc']['host']:.3f}",
                             f"{r['acc']['host'] - r['half_acc']:+.3f}",
                             "converged" if r["converged"] else "not converged"])
    tol = max((r.get("tolerance", 0.05) for r in results), default=0.05)
    t["convergence"] = Table(["model", "attack", "norm", "epsilon", "half budget",
                              "full budget run", "full budget (worst of both)", "change",
                              "verdict"], conv, id="convergence", numeric_from=4,
                             note=f"Converged: doubling the budget changes accuracy by at most "
                             f"{tol:.3f} (0.05, or one image), both for the full-budget run "
                             "alone and for the per-image worst case of both runs, which is "
                             "the figure the tables show.")
    mins = []
    for res in results:
        for r in res["rows"]:
            if not r["bounded"] and r["eps"] is None:
                med = r.get("median_min_perturbation")
                mins.append([res["model"], r["title"], NORM[r["norm"]],
                             f"{r['found']}/{r['attackable']}",
                             "-" if med is None else f"{med:.3f}"])
    t["minimal"] = Table(["model", "attack", "norm", "adversarial found (of correct)",
                          "median minimal perturbation"], mins, id="minimal", numeric_from=3)
    dev_head = ["model", "device", "clean accuracy (host)", "clean accuracy (device)",
                *[_title(results, a) for a in attacks]]
    t["device"] = Table(dev_head, [[
        r["model"], r.get("device") or "none", f"{r['clean']['host']:.3f} (n={r['n']})",
        "-" if r["clean"]["device"] is None else f"{r['clean']['device']:.3f} (n={r['n']})",
        *[_equal(r, a) for a in attacks]] for r in results], id="device", numeric_from=2)
    t["queries"] = Table(["model", "attack oracle", *[_title(results, a) for a in attacks]],
                         [[r["model"], r.get("attack_oracle", "-"),
                           *[_queries(r, a) for a in attacks]] for r in results],
                         id="queries", numeric_from=2)
    mask = []
    for r in results:
        for c in diagnose(r)["checks"]:
            mask.append([r["model"], c["title"], c["status"], "; ".join(c["evidence"])])
    t["masking"] = Table(["model", "check", "result", "evidence"], mask, id="masking",
                         numeric_from=99)
    for r in results:
        tm = r.get("transfer_matrix")
        if tm:
            rows = [[src, f"{e:g}", *[fmt_acc(v, c) for v, c in zip(tm["acc"][k][i],
                                                                    tm["ci"][k][i],
                                                                    strict=True)]]
                    for k, e in enumerate(tm["eps"]) for i, src in enumerate(tm["models"])]
            t["transfer"] = Table(["source (gradients)", "epsilon",
                                   *[f"on {m} (n={tm['n']})" for m in tm["models"]]], rows,
                                  id="transfer", numeric_from=2,
                                  note=f"PGD ({tm['budget']}) crafted on the source, robust "
                                       "accuracy of the target; the diagonal is white-box.")
    return t


def _equal(res: dict, attack: str) -> str:
    eq = [r["host_device_equal"] for r in res["rows"] if r["attack"] == attack]
    if not res.get("device") or not eq or any(e is None for e in eq):
        return "n/a"
    return "equal" if all(eq) else "DIFFERENT"


def _queries(res: dict, attack: str) -> str:
    qs = [r for r in res["rows"] if r["attack"] == attack and (r["bounded"] or r["eps"] is None)]
    if not any(r.get("queries") is not None for r in qs):
        return "-"
    total = sum(r["queries"] or 0 for r in qs)
    return f"{total:,}" + (" (query cap reached)" if any(r["budget_exhausted"] for r in qs)
                           else "")


def to_json(results: list[dict]) -> dict:
    return {"models": [r["model"] for r in results], "results": results,
            "attacks": sorted({r["attack"] for res in results for r in res["rows"]}),
            "masking": {res["model"]: diagnose(res) for res in results}}


def sections(results: list[dict], figures_on: bool = True) -> list[Section]:
    t = tables(results)
    acc = Section("Robust accuracy", "accuracy-section").add("table", t["accuracy"])
    if figures_on:
        acc.add("figure", {"png": figures.accuracy_png(results, "linf"), "id": "chart",
                           "alt": "accuracy vs L-inf epsilon",
                           "caption": "Robust accuracy against L-inf epsilon (95 % bands)."})
        if any(r["norm"] == "l2" for res in results for r in res["rows"]):
            acc.add("figure", {"png": figures.accuracy_png(results, "l2"), "id": "l2-chart",
                               "alt": "accuracy vs L2 epsilon",
                               "caption": "Robust accuracy against L2 epsilon."})
    out = [acc, Section("Budgets", "budgets").add("table", t["budget"])]
    conv = Section("Convergence", "convergence-section").add("table", t["convergence"])
    if figures_on and t["convergence"].rows:
        conv.add("figure", {"png": figures.convergence_png(results), "id": "convergence-chart",
                            "alt": "accuracy at half and full budget"})
    out.append(conv)
    if t["minimal"].rows:
        out.append(Section("Minimal perturbations", "minimal-section").add("table",
                                                                           t["minimal"]))
    mask = Section("Gradient-masking checks", "masking-section").add("table", t["masking"])
    mask.add("note", "Athalye, Carlini & Wagner 2018 checklist: a FLAGGED check means the "
             "figures above may overstate robustness (masked gradients or an attack too weak "
             "at this budget).")
    out.append(mask)
    if "transfer" in t:
        sec = Section("Transfer matrix", "transfer-section").add("table", t["transfer"])
        if figures_on:
            tm = next(r["transfer_matrix"] for r in results if r.get("transfer_matrix"))
            sec.add("figure", {"png": figures.transfer_png(tm), "id": "transfer-chart",
                               "alt": "transfer heat map"})
        out.append(sec)
    out.append(Section("Host vs device", "device-section").add("table", t["device"]).add(
        "note", "Every adversarial input is run on the host reference and the device; their "
        "outputs must be identical."))
    out.append(Section("Black-box queries", "queries-section").add("table", t["queries"]))
    return out


def lead(results: list[dict]) -> str:
    return (f"Dataset {results[0].get('dataset', '?')}; models "
            f"{', '.join(r['model'] for r in results)}; "
            f"{', '.join(sorted({str(r.get('budget', '?')) for r in results}))} budget.")


def markdown(results: list[dict]) -> str:
    return reports.markdown("Robustness report", sections(results, False), lead(results))


def html_page(results: list[dict]) -> str:
    return reports.page("Robustness report", sections(results), lead(results))


def write_reports(out: Path, results: list[dict]) -> dict[str, Path]:
    if not results:
        raise StqError("no results to report")
    paths = {"md": out / "robustness.md", "html": out / "robustness.html",
             "json": out / "robustness.json"}
    write_text(paths["json"], json.dumps(to_json(results), indent=2, default=float) + "\n")
    write_text(paths["md"], markdown(results))
    write_text(paths["html"], html_page(results))
    return paths
