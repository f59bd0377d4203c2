"""Reference vs optimized kernels for every benchmark model on QEMU netduinoplus2 (instructions
under -icount shift=0, not silicon cycles): ternary ResNet-8 and DS-CNN (2-bit and base-3
packing), int8 ResNet-8 and digits, all with batch norm calibrated on data
(benchmarks/models.py, checked non-degenerate). Per model: instructions per inference and per
MAC, per layer, the optimized/reference ratio measured in the same run, and the ratio to the
CMSIS-NN int8 ResNet-8 figure (28.2 M instructions on this board). Both builds must give the
NumPy reference's output bytes on every input. Beside the full firmware (all three device
protocols) the optimized model is also built as a product firmware with only the framed
protocol (`stq build --protocols binary`), whose flash and RAM are reported too. ``--json``
keeps the results (a run of some ``--models`` updates their entries, keeping the others),
``--markdown`` prints the README's numbers table from them (``--from-json`` renders it without
re-running).

    .venv/bin/python benchmarks/kernel_cost.py [--models resnet8,dscnn] [--images 3]
        [--json kernel_cost.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import MODELS, calibrated_graph  # noqa: E402
from resnet8_cost import compare  # noqa: E402

from toolchain.errors import StqError  # noqa: E402
from toolchain.fsutil import write_text  # noqa: E402

CMSIS_NN = 28.2e6  # Arm CMSIS-NN int8 kernels, MLPerf Tiny int8 ResNet-8, this board
TITLE = {"resnet8": "ternary ResNet-8, 2-bit", "resnet8_base3": "ternary ResNet-8, base-3",
         "dscnn": "ternary DS-CNN", "dscnn_base3": "ternary DS-CNN, base-3",
         "resnet8_int8": "int8 ResNet-8", "digits": "digits"}


def report(name: str, c: dict) -> str:
    ref, opt, macs = c["reference"], c["optimized"], c["macs"]
    r_i, o_i = ref["instructions_mean"], opt["instructions_mean"]
    lines = [f"{TITLE[name]} ({c['model']}): {macs} MACs, {c['images']} inputs "
             f"({c['source']}), both builds bit-exact with the NumPy reference",
             f"  reference: {r_i:12.0f} instr {r_i / macs:7.3f}/MAC  "
             f"flash {ref['flash_bytes']} B RAM {ref['ram_bytes']} B",
             f"  optimized: {o_i:12.0f} instr {o_i / macs:7.3f}/MAC  "
             f"flash {opt['flash_bytes']} B RAM {opt['ram_bytes']} B",
             f"  product (--protocols binary): flash {c['product']['flash_bytes']} B "
             f"RAM {c['product']['ram_bytes']} B",
             f"  optimized / reference {o_i / r_i:.4f}, / CMSIS-NN ResNet-8 (28.2 M) "
             f"{o_i / CMSIS_NN:.3f}",
             "  layer                          MACs   reference   optimized  ratio  ref/MAC"
             "  opt/MAC"]
    for layer in c["layers"]:
        r, o, m = layer["reference"] or 0, layer["optimized"] or 0, layer["macs"]
        per = f"{r / m:8.3f} {o / m:8.3f}" if m else ""
        lines.append(f"    {layer['name']:24s} {m:9d} {r:11d} {o:11d} {o / max(r, 1):6.3f} {per}")
    return "\n".join(lines)


def product(c: dict, key: str) -> str:
    return f"{c['product'][key] / 1024:.1f} KB" if "product" in c else "not measured"


def markdown(results: dict[str, dict]) -> str:
    """The README numbers table, from the benchmark results (never typed in)."""
    rows = ["| model (QEMU netduinoplus2, instructions) | MACs | reference C | optimized | per MAC "
            "| opt / ref | opt / CMSIS-NN 28.2 M | flash | RAM | product flash | product RAM |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(results, key=lambda k: MODELS.index(k) if k in MODELS else len(MODELS)):
        c = results[name]
        ref, opt = c["reference"]["instructions_mean"], c["optimized"]["instructions_mean"]
        rows.append(f"| {TITLE[name]} | {c['macs'] / 1e6:.2f} M | {ref / 1e6:.2f} M | "
                    f"{opt / 1e6:.2f} M | {opt / c['macs']:.2f} | {opt / ref:.3f} | "
                    f"{opt / CMSIS_NN:.3f} | {c['optimized']['flash_bytes'] / 1024:.1f} KB | "
                    f"{c['optimized']['ram_bytes'] / 1024:.1f} KB | "
                    f"{product(c, 'flash_bytes')} | {product(c, 'ram_bytes')} |")
    return "\n".join(rows)


def product_size(workdir: Path) -> dict:
    """Flash and RAM of the optimized model (compare() converted it into workdir/optimized) as
    a product firmware carrying only the framed protocol."""
    from toolchain.firmware.boards import load_board
    from toolchain.firmware.build import build

    r = build(workdir / "optimized", load_board("netduinoplus2"), workdir / "build-product",
              protocols="binary")
    return {"protocols": list(r.protocols), "flash_bytes": r.usage["FLASH"][0],
            "ram_bytes": r.usage["RAM"][0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--images", type=int, default=3, help="inputs per model")
    parser.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 folder")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="render --markdown from an earlier --json instead of measuring")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        print(markdown(json.loads(args.from_json.read_text())))
        return 0
    names = [m for m in args.models.split(",") if m]
    bad = [m for m in names if m not in MODELS]
    if bad:
        print(f"kernel_cost: error: unknown model {bad[0]!r}; choose from {', '.join(MODELS)}",
              file=sys.stderr)
        return 2
    results: dict[str, dict] = {}
    if args.json is not None and args.json.is_file():  # keep the models not re-run
        results = json.loads(args.json.read_text())
    try:
        for name in names:
            g, xs, source = calibrated_graph(name, n_eval=args.images, data_dir=args.data_dir)
            with tempfile.TemporaryDirectory(prefix="stq-kcost-") as tmp:
                c = compare(g, xs, Path(tmp), args.timeout)
                c["product"] = product_size(Path(tmp))
            c["source"] = source
            for k in ("reference", "optimized"):
                c[k].pop("outputs", None)
            results[name] = c
            print(report(name, c), flush=True)
            if args.json is not None:  # in MODELS order, written as each model finishes
                write_text(args.json, json.dumps({k: results[k] for k in MODELS if k in results},
                                                 indent=2) + "\n")
    except StqError as exc:
        print(f"kernel_cost: error: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
