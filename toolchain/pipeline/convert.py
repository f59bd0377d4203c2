"""`stq convert`: QKeras or TFLite int8 model -> integer artifact + C sources, all or nothing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from toolchain.codegen import writer as codegen
from toolchain.codegen.selection import KERNELS
from toolchain.errors import StqError
from toolchain.frontend.keras import convert_model, load_keras_model
from toolchain.fsutil import ensure_writable_dir, output_dir
from toolchain.ir import artifact
from toolchain.ir.graph import Graph
from toolchain.ir.outdir import ARTIFACT_NAME
from toolchain.ir.packing import SCHEMES


def convert_graph(g: Graph, outdir: Path, kernels: str = "optimized",
                  prefix: str = codegen.DEFAULT_PREFIX,
                  source: str | None = None) -> dict[str, Any]:
    """Write OUTDIR/model.stqa, OUTDIR/c/ and OUTDIR/convert.json; nothing on failure.

    ``kernels`` and ``prefix`` shape the C only: the artifact (and its hash) is the same.
    ``source``: the model file it came from (recorded, e.g. for an ensemble's white-box)."""
    outdir = Path(outdir)
    ensure_writable_dir(outdir)
    cmodel = codegen.generate(g, kernels, prefix)  # all computed before anything is written
    stage = Path(tempfile.mkdtemp(prefix=".stq-convert-", dir=outdir))
    try:
        digest = artifact.save(g, stage / ARTIFACT_NAME)
        (stage / "c").mkdir()
        for name, text in cmodel.files.items():
            (stage / "c" / name).write_text(text)
        summary = {
            "model": g.name, "source": source, "hash": digest,
            "artifact": str(outdir / ARTIFACT_NAME),
            "c_dir": str(outdir / "c"), "packing": g.options.get("packing", "2bit"),
            "kernels": cmodel.kernels, "prefix": cmodel.prefix,
            "scratch_bytes": cmodel.scratch_bytes,
            "macs": g.macs(), "arena_bytes": cmodel.arena_bytes,
            "weight_bytes": sum(cmodel.weight_bytes.values()),
            "layers": [{"name": n.name, "op": n.op, "output": list(g.tensors[n.output].shape),
                        "dtype": g.tensors[n.output].dtype,
                        "weights": n.attrs.get("weight_kind"),
                        "flash_bytes": cmodel.weight_bytes[n.name],
                        "kernel": x.kernel, "optimized": x.kernel != x.ref_kernel}
                       for n, x in zip(g.nodes, cmodel.layers, strict=True)],
            "input": g.input_format, "output": {"dtype": g.tensors[g.output].dtype,
                                                "scale": g.tensors[g.output].scale,
                                                "zero_point": g.tensors[g.output].zero_point,
                                                **g.output_info},
        }
        (stage / "convert.json").write_text(json.dumps(summary, indent=2))
        old_c = outdir / ".c.old"
        shutil.rmtree(old_c, ignore_errors=True)
        if (outdir / "c").exists():
            os.replace(outdir / "c", old_c)
        os.replace(stage / "c", outdir / "c")
        os.replace(stage / ARTIFACT_NAME, outdir / ARTIFACT_NAME)
        os.replace(stage / "convert.json", outdir / "convert.json")
        shutil.rmtree(old_c, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary


def convert(model_path: str | os.PathLike, outdir: str | os.PathLike,
            packing: str = "2bit", kernels: str = "optimized") -> dict[str, Any]:
    if packing not in SCHEMES:
        raise StqError(f"--packing {packing!r} is not one of {', '.join(SCHEMES)}")
    if kernels not in KERNELS:
        raise StqError(f"--kernels {kernels!r} is not one of {', '.join(KERNELS)}")
    out = Path(outdir)
    # fail on an unwritable output before the slow model load; a failed convert removes the
    # folders it created
    with output_dir(out):
        if Path(model_path).suffix.lower() == ".tflite":
            from toolchain.frontend.tflite import convert_tflite

            g = convert_tflite(model_path)
        else:
            model = load_keras_model(model_path)
            g = convert_model(model, name=Path(model_path).stem)
        g.options["packing"] = packing
        return convert_graph(g, out, kernels, source=str(Path(model_path).resolve()))
