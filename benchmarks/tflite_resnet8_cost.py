"""The MLPerf Tiny ResNet-8 int8 .tflite on QEMU netduinoplus2: stq's DSP kernels against its
reference C loops (measured in the same run) and Arm's CMSIS-NN figure on this board.

Converts ../shared/models/mlperf_tiny_ic_resnet8_int8.tflite twice (reference and optimized
kernels), runs both firmwares under ``-icount shift=0`` on real CIFAR-10 test images (int8 =
pixel - 128), checks every output byte against the host reference (itself equal to TFLite's
BUILTIN_REF interpreter: tests/test_tflite.py), and prints instructions per inference, per
layer and per MAC, with the model's flash and RAM against the CMSIS-NN build (110.9 KB flash,
55 KB RAM). Instructions are not silicon cycles.

    .venv/bin/python benchmarks/tflite_resnet8_cost.py [--images 3] [--json cost.json]
        [--markdown]      # also print the README's table
    .venv/bin/python benchmarks/tflite_resnet8_cost.py --from-json cost.json  # the table again
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from resnet8_cost import compare  # noqa: E402

from tests.tflite_helpers import RESNET, cifar  # noqa: E402
from toolchain.errors import StqError  # noqa: E402
from toolchain.fsutil import write_text  # noqa: E402

CMSIS_NN = {"instructions": 28.2e6, "flash_bytes": 110.9e3, "ram_bytes": 55e3}


def model_footprint(outdir: Path) -> tuple[int, int]:
    """(flash, RAM) of the model itself: weights + parameters + kernel code is in the firmware
    total; here the generator's own numbers: weights+params and arena+scratch."""
    s = json.loads((outdir / "convert.json").read_text())
    return int(s["weight_bytes"]), int(s["arena_bytes"] + s["scratch_bytes"])


def markdown(c: dict) -> str:
    """The README's table (KB = 1000 B) from this script's --json results."""
    macs, ci = c["macs"], CMSIS_NN["instructions"]

    def row(name: str, instr: float, model_flash: str, flash: float, ram: float) -> str:
        return (f"| {name} | {instr / 1e6:.1f} M | {instr / macs:.2f} | {model_flash} | "
                f"{flash / 1e3:.1f} KB | {ram / 1e3:.1f} KB |")

    lines = [f"| MLPerf ResNet-8 int8 .tflite ({macs / 1e6:.1f} M MACs) | instructions | per MAC "
             "| model flash (weights + params) | firmware flash | model RAM (arena + scratch) |",
             "|---|---|---|---|---|---|",
             row("Arm CMSIS-NN (published, this board)", ci, "-", CMSIS_NN["flash_bytes"],
                 CMSIS_NN["ram_bytes"]).replace("55.0 KB", "55 KB")]
    for key, name in (("reference", "stq reference C (`--kernels reference`)"),
                      ("optimized", "stq DSP kernels (default)")):
        r = c[key]
        lines.append(row(name, r["instructions_mean"], f"{r['model_flash'] / 1e3:.1f} KB",
                         r["flash_bytes"], r["model_ram"]))
    opt = c["optimized"]
    lines += ["", f"Whole DSP firmware RAM, with stack and link buffers: "
              f"{opt['ram_bytes'] / 1e3:.1f} KB; {c['images']} CIFAR-10 images."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3, help="CIFAR-10 test images")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds QEMU may run per firmware")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--markdown", action="store_true", help="also print the README table")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="print the README table of an earlier --json instead of measuring")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        try:
            print(markdown(json.loads(args.from_json.read_text())))
        except (OSError, ValueError, KeyError) as exc:
            print(f"tflite_resnet8_cost: error: cannot read {args.from_json}: {exc}",
                  file=sys.stderr)
            return 2
        return 0
    from toolchain.frontend.tflite import convert_tflite

    g = convert_tflite(RESNET)
    xs, _ = cifar(args.images)
    try:
        with tempfile.TemporaryDirectory(prefix="stq-tflcost-") as tmp:
            c = compare(g, xs, Path(tmp), args.timeout)
            for key in ("reference", "optimized"):
                c[key]["model_flash"], c[key]["model_ram"] = model_footprint(Path(tmp) / key)
            c["model_flash"], c["model_ram"] = c["optimized"]["model_flash"], \
                c["optimized"]["model_ram"]
    except StqError as exc:
        print(f"tflite_resnet8_cost: error: {exc}", file=sys.stderr)
        return 2
    ref, opt, macs = c["reference"], c["optimized"], c["macs"]
    ci = CMSIS_NN["instructions"]
    lines = [
        f"MLPerf Tiny ResNet-8 int8 (.tflite): {macs} MACs, {c['images']} CIFAR-10 images, both "
        "builds bit-exact with the host reference on every image (QEMU netduinoplus2, "
        "-icount shift=0)",
        f"  {'':24s} {'instr/inference':>16s} {'instr/MAC':>10s} {'vs CMSIS-NN':>12s}",
        f"  {'stq reference C':24s} {ref['instructions_mean']:16.0f} "
        f"{ref['instructions_mean'] / macs:10.3f} {ref['instructions_mean'] / ci:12.3f}",
        f"  {'stq DSP kernels':24s} {opt['instructions_mean']:16.0f} "
        f"{opt['instructions_mean'] / macs:10.3f} {opt['instructions_mean'] / ci:12.3f}",
        f"  {'Arm CMSIS-NN (published)':24s} {ci:16.0f} {ci / macs:10.3f} {1.0:12.3f}",
        f"  model flash (weights + parameters) {c['model_flash']:,} B vs CMSIS-NN build "
        f"{CMSIS_NN['flash_bytes']:,.0f} B; whole firmware {opt['flash_bytes']:,} B",
        f"  model RAM (arena + scratch) {c['model_ram']:,} B vs CMSIS-NN build "
        f"{CMSIS_NN['ram_bytes']:,.0f} B; whole firmware {opt['ram_bytes']:,} B (with stack "
        "and link buffers)",
        "  per layer (first image)        MACs   reference   optimized  ratio  ref/MAC  opt/MAC",
    ]
    for layer in c["layers"]:
        r, o, m = layer["reference"] or 0, layer["optimized"] or 0, layer["macs"]
        per = f"{r / m:8.3f} {o / m:8.3f}" if m else ""
        lines.append(f"    {layer['name']:24s} {m:9d} {r:11d} {o:11d} {o / max(r, 1):6.3f} {per}")
    print("\n".join(lines))
    if args.markdown:
        print("\n" + markdown(c))
    if args.json is not None:
        write_text(args.json, json.dumps(c, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
