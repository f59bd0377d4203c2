"""The MLPerf Tiny ResNet-8 int8 .tflite on QEMU netduinoplus2: stq's DSP kernels against its
reference C loops (measured in the same run) and Arm's CMSIS-NN figure on this board.

Converts ../shared/models/mlperf_tiny_ic_resnet8_int8.tflite twice (reference and optimized
kernels), runs both firmwares under ``-icount shift=0`` on real CIFAR-10 test images (int8 =
pixel - 128), checks every output byte against the host reference (itself equal to TFLite's
BUILTIN_REF interpreter: tests/test_tflite.py), and prints instructions per inference, per
layer and per MAC, with the model's flash and RAM against the CMSIS-NN build (110.9 KB flash,
55 KB RAM). Instructions are not silicon cycles.

    .venv/bin/python benchmarks/tflite_resnet8_cost.py [--images 3] [--json cost.json]
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

CMSIS_NN = {"instructions": 28.2e6, "flash_bytes": 110.9e3, "ram_bytes": 55e3}


def model_footprint(outdir: Path) -> tuple[int, int]:
    """(flash, RAM) of the model itself: weights + parameters + kernel code is in the firmware
    total; here the generator's own numbers: weights+params and arena+scratch."""
    s = json.loads((outdir / "convert.json").read_text())
    return int(s["weight_bytes"]), int(s["arena_bytes"] + s["scratch_bytes"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3, help="CIFAR-10 test images")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    from toolchain.frontend.tflite import convert_tflite

    g = convert_tflite(RESNET)
    xs, _ = cifar(args.images)
    try:
        with tempfile.TemporaryDirectory(prefix="stq-tflcost-") as tmp:
            c = compare(g, xs, Path(tmp), args.timeout)
            c["model_flash"], c["model_ram"] = model_footprint(Path(tmp) / "optimized")
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
    if args.json is not None:
        args.json.write_text(json.dumps(c, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
