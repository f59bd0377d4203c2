"""Converter and host-reference speed.

(a) Conversion time of the MLPerf Tiny ResNet-8 (32x32x3, ternary middle layers,
    ``zoo.resnet8("stq")``, untrained): frontend (QKeras -> integer IR) + artifact save + C
    generation (``toolchain.convert.convert_graph``), median of ``--runs`` runs. Building the
    Keras model is not counted.
(b) Throughput (images/s) of the bit-exact NumPy reference (``reference.predict`` on the
    quantized inputs) against Keras ``model.predict`` on the same batch, in the same process:
    ``--batch`` random 32x32x3 inputs for ResNet-8 and the 360 digits test images for the digits
    model (trained here with the default seeded settings, about 30 s, or given with --model).
    Each timing is the median of ``--repeats`` runs after one warm-up call (Keras traces its
    predict function on the first call). Top-1 agreement of the two is printed as a sanity check.

    .venv/bin/python benchmarks/convert_bench.py [--model digits_stq.h5] [--json bench.json]
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=UserWarning)  # Keras/QKeras serialization noise
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bench_cli  # noqa: E402
import numpy as np  # noqa: E402

from toolchain.frontend.keras import convert_model, load_keras_model  # noqa: E402
from toolchain.pipeline.convert import convert_graph  # noqa: E402
from toolchain.reference import model as reference  # noqa: E402
from toolchain.training import datasets, zoo  # noqa: E402


def timed(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls (after an optional warm-up call) and the result."""
    out = fn() if warmup else None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def conversion(model: Any, runs: int) -> dict[str, Any]:
    frontend_s, total_s = [], []
    summary: dict[str, Any] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="stq-bench-") as tmp:
            start = time.perf_counter()
            g = convert_model(model)
            mid = time.perf_counter()
            summary = convert_graph(g, Path(tmp) / "out")
            end = time.perf_counter()
        frontend_s.append(mid - start)
        total_s.append(end - start)
    return {
        "model": summary["model"], "runs": runs, "macs": summary["macs"],
        "weight_bytes": summary["weight_bytes"], "arena_bytes": summary["arena_bytes"],
        "frontend_s_median": statistics.median(frontend_s),
        "total_s_median": statistics.median(total_s),
        "total_s_all": total_s,
    }


def throughput(name: str, model: Any, x: np.ndarray, repeats: int) -> dict[str, Any]:
    g = convert_model(model)
    xq = reference.quantize_input(g, x)
    n = len(x)
    ref_s, y_ref = timed(lambda: reference.predict(g, xq), repeats, warmup=False)
    keras_s, y_keras = timed(lambda: model.predict(x, batch_size=n, verbose=0), repeats)
    agree = float(np.mean(np.argmax(y_ref, axis=1) == np.argmax(y_keras, axis=1)))
    return {
        "model": name, "images": n,
        "reference_s": ref_s, "keras_s": keras_s,
        "reference_img_per_s": n / ref_s, "keras_img_per_s": n / keras_s,
        "ratio_reference_over_keras": (n / ref_s) / (n / keras_s),
        "top1_agreement": agree,
    }


def digits_model(path: Path | None) -> tuple[Any, dict[str, Any]]:
    if path is not None:
        return load_keras_model(path), {"source": str(path)}
    from toolchain.training.train import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="stq-bench-train-") as tmp:
        r = train(TrainConfig(), Path(tmp), progress=False)
        model = load_keras_model(r.model_path)
    return model, {"source": "trained (TrainConfig defaults)", "train_s": r.seconds,
                   "test_accuracy": r.test_accuracy}


def report(r: dict[str, Any]) -> str:
    c = r["conversion"]
    lines = [
        f"host: {r['host']['machine']}, {r['host']['cpus']} CPUs, Python {r['host']['python']}",
        f"(a) conversion of {c['model']} ({c['macs']} MACs, {c['weight_bytes']} weight bytes): "
        f"median {c['total_s_median']:.2f} s over {c['runs']} runs "
        f"(frontend {c['frontend_s_median']:.2f} s, artifact + C the rest)",
        "(b) throughput, same batch, same process:",
        f"    {'model':10s} {'images':>6s} {'reference img/s':>16s} {'Keras img/s':>12s} "
        f"{'ref/Keras':>10s} {'top-1 agree':>11s}",
    ]
    for t in r["throughput"]:
        lines.append(
            f"    {t['model']:10s} {t['images']:6d} {t['reference_img_per_s']:16.1f} "
            f"{t['keras_img_per_s']:12.1f} {t['ratio_reference_over_keras']:10.3f} "
            f"{t['top1_agreement']:11.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_cli.parser(__doc__)
    parser.add_argument("--model", type=Path, default=None,
                        help="trained digits .h5 (default: train one, about 30 s)")
    parser.add_argument("--runs", type=int, default=3, help="conversion runs (median)")
    parser.add_argument("--repeats", type=int, default=3, help="timed predict calls (median)")
    parser.add_argument("--batch", type=int, default=64, help="ResNet-8 batch size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)

    def work() -> dict:
        resnet = zoo.resnet8("stq")
        conv = conversion(resnet, args.runs)
        rng = np.random.default_rng(args.seed)
        x_resnet = rng.uniform(0.0, 1.0, (args.batch, 32, 32, 3)).astype(np.float32)
        rows = [throughput("resnet8", resnet, x_resnet, args.repeats)]
        digits, digits_info = digits_model(args.model)
        rows.append(throughput("digits", digits, datasets.digits().x_test, args.repeats))
        return {
            "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                     "python": platform.python_version(), "tensorflow": tf.__version__,
                     "numpy": np.__version__},
            "conversion": conv, "throughput": rows, "digits": digits_info,
        }

    return bench_cli.finish("convert_bench", work, report, args.json)

if __name__ == "__main__":
    sys.exit(main())
