"""Write an ensemble OUTDIR: every member's C with its own symbol prefix (m1_, m2_, ...) plus a
small wrapper that exposes the standard ``stq_model_*`` API (model.h) to the firmware, runs
each member on the same input and combines their outputs (toolchain/ensemble/combine.py). The
members share one arena and one kernel scratch buffer (toolchain/ensemble/layout.py): each
member's weighted output is added to int64 accumulators before the next member runs.

OUTDIR/ensemble.json (members, weights, hash), OUTDIR/members/m<i>.stqa (the member
artifacts, for the host reference), OUTDIR/c/ (what `stq build` compiles); all or nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolchain import __version__
from toolchain.codegen import writer as codegen
from toolchain.ensemble.combine import MANIFEST, WEIGHT_BITS, Ensemble
from toolchain.ensemble.layout import ARENA, SCRATCH, layout
from toolchain.fsutil import atomic_dir, ensure_writable_dir
from toolchain.ir import artifact
from toolchain.ir.graph import Graph

WRAPPER = {"model.h": "api/ensemble.h.j2", "model.c": "schedule/ensemble.c.j2",
           "kernels.h": "api/ensemble_kernels.h.j2", "kernels.c": "schedule/ensemble_combine.c.j2",
           "weights.c": "schedule/ensemble_weights.c.j2"}


def write_ensemble(graphs: list[Graph], names: list[str], outdir: Path,
                   kernels: str = "optimized", sources: list[str | None] | None = None) -> dict:
    """Generate the ensemble folder; returns its manifest (``sources``: each member's model
    file, recorded in it)."""
    ens = Ensemble(graphs, names)
    prefixes = [f"m{i + 1}_" for i in range(len(graphs))]
    cmodels = [codegen.generate(g, kernels, p, shared_arena=ARENA, shared_scratch=SCRATCH)
               for g, p in zip(graphs, prefixes, strict=True)]
    env = codegen._env()
    t_in = graphs[0].tensors[graphs[0].input]
    shape = list(t_in.shape) + [1] * (3 - len(t_in.shape))
    ram = layout([cm.arena_bytes for cm in cmodels], [cm.scratch_bytes for cm in cmodels],
                 t_in.nbytes, ens.classes)
    members = [{"p": p, "P": p.upper(), "tag": p.rstrip("_"), "name": n, "hash": h, "weight": k,
                "layers": len(g.nodes), "layer_names": [n.name for n in g.nodes],
                "elem": g.tensors[g.output].itemsize,
                "ctype": "int32_t" if g.tensors[g.output].itemsize == 4 else "int8_t",
                "arena": cm.arena_bytes, "macs": g.macs()}
               for p, n, h, k, g, cm in zip(prefixes, names, ens.hashes, ens.weights, graphs,
                                            cmodels, strict=True)]
    ctx = {"version": __version__, "hash": ens.hash, "name": "ensemble_" + "_".join(names),
           "members": members, "in_h": shape[0], "in_w": shape[1], "in_c": shape[2],
           "input_bytes": t_in.nbytes, "input_signed": int(t_in.dtype != "uint8"),
           "input_dtype": t_in.dtype, "classes": ens.classes, "weight_bits": WEIGHT_BITS,
           "layers": sum(m["layers"] for m in members), "macs": sum(m["macs"] for m in members),
           "arena_bytes": ram.total, "ram": ram, "arena": ARENA, "scratch": SCRATCH,
           "scale": ens.scale}
    manifest = ens.manifest(prefixes)
    manifest["names"] = names
    for m, src in zip(manifest["members"], sources or [None] * len(graphs), strict=True):
        m["source"] = src
    manifest["kernels"] = kernels
    manifest["ram"] = {"arena": ram.total, "members_region": ram.members,
                       "input_offset": ram.input_offset, "acc_offset": ram.acc_offset,
                       "output_offset": ram.output_offset, "scratch": ram.scratch_bytes,
                       "member_arenas": [cm.arena_bytes for cm in cmodels],
                       "member_scratch": [cm.scratch_bytes for cm in cmodels]}
    outdir = Path(outdir)
    ensure_writable_dir(outdir.parent)
    with atomic_dir(outdir) as tmp:
        (tmp / "c").mkdir()
        (tmp / "members").mkdir()
        for cm in cmodels:
            for fname, text in cm.files.items():
                (tmp / "c" / fname).write_text(text)
        for fname, tpl in WRAPPER.items():
            (tmp / "c" / fname).write_text(env.get_template(tpl).render(**ctx))
        for g, p in zip(graphs, prefixes, strict=True):
            artifact.save(g, tmp / "members" / f"{p.rstrip('_')}.stqa")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def from_outdirs(dirs: list[Path], names: list[str], outdir: Path) -> dict:
    """An ensemble of converted models (`stq convert` OUTDIRs); each member's manifest entry
    keeps the model file its conversion came from (``source``, for white-box attacks)."""
    from toolchain.reference import model as reference

    graphs = [reference.load_artifact_dir(d) for d in dirs]
    sources = []
    for d in dirs:
        conv = Path(d) / "convert.json"
        sources.append(json.loads(conv.read_text()).get("source") if conv.is_file() else None)
    return write_ensemble(graphs, names, Path(outdir), sources=sources)
