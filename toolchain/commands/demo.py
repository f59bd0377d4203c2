"""The whole pipeline on the bundled digits data: train a ternary (STQ) model, convert it to
the integer artifact and C, run the generated C, and check it bit for bit against the NumPy
reference and top-1 against the QKeras model."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from toolchain.errors import StqError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="out/demo", metavar="OUTDIR")
    p.add_argument("--model", help="use this QKeras model instead of training one")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--packing", default="2bit", choices=("2bit", "base3"))
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _stage(name: str) -> float:
    print(f"[demo] {name} ...", flush=True)
    return time.time()


def run(args: argparse.Namespace) -> int:
    import tensorflow as tf

    from toolchain import datasets, reference
    from toolchain.convert import convert
    from toolchain.frontend import load_keras_model
    from toolchain.hostrun import HostModel
    from toolchain.reference import load_artifact_dir
    from toolchain.train import TrainConfig, train

    out = Path(args.output)
    timings: dict[str, float] = {}
    if args.model:
        model_path = Path(args.model)
    else:
        t = _stage(f"training the digits STQ model ({args.epochs} epochs)")
        r = train(TrainConfig(epochs=args.epochs), out / "train", progress=False)
        model_path = Path(r.model_path)
        timings["train"] = time.time() - t
        print(f"[demo]   QKeras test accuracy {r.test_accuracy:.4f}")

    t = _stage("converting to the integer artifact and C")
    s = convert(model_path, out / "model", args.packing)
    timings["convert"] = time.time() - t
    print(f"[demo]   {len(s['layers'])} layers, {s['macs']:,} MACs, weights+params "
          f"{s['weight_bytes']:,} B, arena {s['arena_bytes']:,} B")

    t = _stage("compiling the generated C for the host and running the test set")
    ds = datasets.digits()
    g = load_artifact_dir(out / "model")
    xq = reference.quantize_input(g, ds.x_test)
    host = HostModel(g, out / "model" / "c", workdir=out / "host")
    y_c, top_c = host.predict(xq)
    timings["run_c"] = time.time() - t

    t = _stage("comparing with the NumPy reference and the QKeras model")
    y_ref = reference.predict(g, xq)
    keras_model = load_keras_model(model_path)
    k_out = tf.keras.Model(keras_model.input, keras_model.layers[-2].output)
    y_keras = k_out.predict(ds.x_test, verbose=0).reshape(len(xq), -1)
    timings["compare"] = time.time() - t
    exact = int(np.sum(np.all(y_c == y_ref, axis=1)))
    summary = {
        "model": str(model_path), "artifact": s["artifact"], "hash": s["hash"],
        "images": len(xq), "c_vs_reference_bit_exact": exact,
        "c_top1_accuracy": float(np.mean(top_c == ds.y_test)),
        "c_vs_qkeras_top1_agreement": float(np.mean(top_c == y_keras.argmax(1))),
        "weight_bytes": s["weight_bytes"], "arena_bytes": s["arena_bytes"], "macs": s["macs"],
        "seconds": timings,
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary, indent=2))
    print(f"[demo] C vs reference: {exact}/{len(xq)} images bit-exact; C top-1 accuracy "
          f"{summary['c_top1_accuracy']:.4f}; top-1 agreement with QKeras "
          f"{summary['c_vs_qkeras_top1_agreement']:.4f}")
    print(f"[demo] summary: {out / 'demo.json'}")
    if exact != len(xq):
        raise StqError(f"the generated C differs from the reference on {len(xq) - exact} images")
    return 0
