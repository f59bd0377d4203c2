"""The budget of an ensemble folder (toolchain/ensemble/generate.py): its members' layers,
weights and kernels (each under its own prefix m1_, m2_, ...) plus the wrapper, with the RAM
the firmware really has: one shared arena ``stq_arena`` (the largest member arena, the input,
the int64 accumulators and the output, toolchain/ensemble/layout.py) and one shared kernel
scratch ``stq_scratch``, not one of each per member. `stq budget ENSEMBLE_DIR --elf` checks it
against the linked ELF like a single model's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from toolchain.budget.analysis import Budget, analyze
from toolchain.codegen.support import MODEL_FUNCTIONS
from toolchain.ensemble import combine
from toolchain.ensemble.layout import ARENA, SCRATCH, layout

# what the wrapper (templates/schedule/ensemble*.c.j2) defines besides the stq_model_* API
WRAPPER_OBJECTS = ("stq_layer_names", "stq_model_hash", "stq_hook", "stq_ensemble_weights",
                   ARENA)


def is_ensemble(path: str | Path) -> bool:
    return Path(path).is_dir() and combine.is_ensemble(path)


def analyze_ensemble(root: Path) -> Budget:
    """The budget of the ensemble firmware's model part, exactly as generate.py wrote its C."""
    ens = combine.load(root)
    man = json.loads((root / combine.MANIFEST).read_text())
    kernels = man.get("kernels", "optimized")
    prefixes = [m["prefix"] for m in man["members"]]
    parts = [analyze(g, kernels, p, ARENA, SCRATCH)
             for g, p in zip(ens.graphs, prefixes, strict=True)]
    ram = layout([b.arena_bytes for b in parts], [b.scratch_bytes for b in parts],
                 parts[0].input_bytes, ens.classes)
    layers, symbols, offsets = [], {ARENA: ram.total}, dict(ram.offsets())
    for p, b in zip(prefixes, parts, strict=True):
        layers += [replace(x, index=len(layers) + i, name=p + x.name)
                   for i, x in enumerate(b.layers)]
        symbols |= b.symbols
        offsets |= {p + t: off for t, off in b.offsets.items()}
    tags = [p.rstrip("_") for p in prefixes]
    wrapper_functions = ({f"stq_{f}" for f in MODEL_FUNCTIONS} | {"stq_ensemble_finish"}
                         | {f"stq_ensemble_add_{t}" for t in tags}
                         | {f"stq_hook_{p}" for p in prefixes})
    lift = ram.overhead  # what the shared arena holds beyond the largest member's own
    return Budget(
        model=f"ensemble_{'_'.join(man.get('names', tags))}", hash=ens.hash,
        packing="/".join(sorted({b.packing for b in parts})), layers=layers, symbols=symbols,
        arena_bytes=ram.total, arena_greedy=max(b.arena_greedy for b in parts) + lift,
        arena_lower_bound=max(b.arena_lower_bound for b in parts) + lift,
        arena_optimal=all(b.arena_optimal for b in parts),
        arena_strategy="shared by the members: " + ", ".join(b.arena_strategy for b in parts),
        offsets=offsets, input_bytes=parts[0].input_bytes, scratch_bytes=ram.scratch_bytes,
        prefix="stq_", kernel_functions=set().union(*(b.kernel_functions for b in parts)),
        helper_functions=set().union(*(b.helper_functions for b in parts)),
        tables=set().union(*(b.tables for b in parts)) | {SCRATCH},
        model_functions=set().union(*(b.model_functions for b in parts)) | wrapper_functions,
        model_objects=set().union(*(b.model_objects for b in parts)) | set(WRAPPER_OBJECTS),
        ram_objects=set().union(*(b.ram_objects for b in parts)) | {"stq_hook", ARENA})
