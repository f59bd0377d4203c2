"""Reference vs optimized kernels on QEMU netduinoplus2: instructions per inference, per layer
and per MAC, for the ternary ResNet-8 (MLPerf Tiny topology, 12.5 M MACs) or a converted model.

Converts the same graph twice (``kernels='reference'`` and ``kernels='optimized'``), builds and
boots both firmwares under ``-icount shift=0`` (benchmarks/qemu_cost.py), checks that both give
the host NumPy reference's output bytes on every input, and prints the optimized cost as a ratio
of the reference cost measured in the same run. Instructions are not silicon cycles.

    .venv/bin/python benchmarks/resnet8_cost.py [--images 3] [--model OUTDIR] [--json cost.json]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_cli  # noqa: E402
from qemu_cost import measure  # noqa: E402

from toolchain.errors import StqError  # noqa: E402
from toolchain.ir.graph import Graph, node_macs  # noqa: E402

BASELINES = {"CMSIS-NN int8 kernels": 28.2e6, "plain C reference loops": 94.7e6}  # ResNet-8


def resnet8_graph() -> Graph:
    from toolchain.frontend.keras import convert_model
    from toolchain.training import zoo

    return convert_model(zoo.resnet8("stq"), name="resnet8")


def random_inputs(g: Graph, n: int, seed: int = 0) -> np.ndarray:
    from toolchain.reference.model import NP_DTYPE

    t = g.tensors[g.input]
    rng = np.random.default_rng(seed)
    return rng.integers(t.qmin, t.qmax + 1, size=(n, *t.shape)).astype(NP_DTYPE[t.dtype])


def expected_outputs(g: Graph, xs: np.ndarray) -> list[str]:
    from toolchain.reference import model as reference

    out_t = g.tensors[g.output]
    dt = np.dtype("<i4") if out_t.itemsize == 4 else np.dtype(np.int8)
    return [reference.run(g, x)[g.output].reshape(-1).astype(dt).tobytes().hex() for x in xs]


def compare(g: Graph, xs: np.ndarray, workdir: Path, timeout: float) -> dict:
    from toolchain.pipeline.convert import convert_graph

    inputs = [np.ascontiguousarray(x).tobytes() for x in xs]
    want = expected_outputs(g, xs)
    runs = {}
    for kernels in ("reference", "optimized"):
        outdir = workdir / kernels
        convert_graph(g, outdir, kernels=kernels)
        r = measure(outdir, len(inputs), workdir / f"build-{kernels}", timeout, inputs)
        bad = [i for i, (got, exp) in enumerate(zip(r["outputs"], want, strict=True))
               if got != exp]
        if bad:
            raise StqError(f"{kernels} kernels differ from the NumPy reference on inputs {bad}")
        runs[kernels] = r
    g.options.pop("kernels", None)
    macs = {n.name: node_macs(g, n) for n in g.nodes}
    layers = []
    for lr, lo in zip(runs["reference"]["layers"], runs["optimized"]["layers"], strict=True):
        m = macs.get(lr["name"], 0)
        layers.append({"name": lr["name"], "macs": m, "reference": lr["instructions"],
                       "optimized": lo["instructions"]})
    return {"model": g.name, "macs": g.macs(), "images": len(inputs), "bit_exact": True,
            "reference": runs["reference"], "optimized": runs["optimized"], "layers": layers}


def report(c: dict) -> str:
    ref, opt = c["reference"], c["optimized"]
    macs = c["macs"]
    lines = [
        f"{c['model']}: {macs} MACs, {c['images']} inputs, both builds bit-exact with the "
        f"NumPy reference on every input (QEMU netduinoplus2, -icount shift=0)",
        f"  reference kernels: {ref['instructions_mean']:12.0f} instr/inference "
        f"{ref['instructions_mean'] / macs:7.3f} instr/MAC  flash {ref['flash_bytes']} B "
        f"RAM {ref['ram_bytes']} B",
        f"  optimized kernels: {opt['instructions_mean']:12.0f} instr/inference "
        f"{opt['instructions_mean'] / macs:7.3f} instr/MAC  flash {opt['flash_bytes']} B "
        f"RAM {opt['ram_bytes']} B",
        f"  optimized / reference: {opt['instructions_mean'] / ref['instructions_mean']:.4f} "
        f"({ref['instructions_mean'] / opt['instructions_mean']:.1f}x fewer instructions)",
    ]
    if c["model"] == "resnet8":
        for name, n in BASELINES.items():
            lines.append(f"  vs {name} ({n / 1e6:.1f} M instr): "
                         f"{opt['instructions_mean'] / n:.3f}")
    lines.append("  per layer (first input)        MACs   reference   optimized  ratio  "
                 "ref/MAC  opt/MAC")
    for layer in c["layers"]:
        r, o, m = layer["reference"] or 0, layer["optimized"] or 0, layer["macs"]
        per = f"{r / m:8.3f} {o / m:8.3f}" if m else ""
        lines.append(f"    {layer['name']:24s} {m:9d} {r:11d} {o:11d} {o / max(r, 1):6.3f} {per}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_cli.parser(__doc__)
    parser.add_argument("--model", type=Path, default=None,
                        help="OUTDIR of `stq convert` (its model.stqa); default: zoo ResNet-8")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.model is not None:
        from toolchain.ir import artifact

        g = artifact.load(args.model / "model.stqa")
    else:
        g = resnet8_graph()
    xs = random_inputs(g, args.images)

    def work() -> dict:
        with tempfile.TemporaryDirectory(prefix="stq-kcost-") as tmp:
            return compare(g, xs, Path(tmp), args.timeout)

    return bench_cli.finish("resnet8_cost", work, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
