"""Tensor lifetimes and in-place aliasing: what the arena planner (memory/planner.py) is given.

A tensor lives from the step that writes it to the last step that reads it (the model input
from step 0, the output to the end). A fused residual conv or an add may write its output over
an input it consumes element by element; such tensors share one buffer."""

from __future__ import annotations

from toolchain.ir.graph import Graph
from toolchain.memory.planner import ArenaPlanner


def lifetimes(g: Graph) -> dict[str, tuple[int, int]]:
    """[first, last] step of every tensor: the input from step 0, the output to the end."""
    first: dict[str, int] = {g.input: 0}
    last: dict[str, int] = {g.input: 0}
    for i, n in enumerate(g.nodes):
        first.setdefault(n.output, i)
        for t in n.inputs:
            last[t] = max(last.get(t, 0), i)
    last[g.output] = len(g.nodes)
    return {t: (f, max(f, last.get(t, f))) for t, f in first.items()}


def inplace_aliases(g: Graph) -> dict[str, str]:
    """Outputs written over an input they are computed from, element by element: a fused
    residual conv/dense reads ``res[i]`` just before it writes ``out[i]`` (and an add reads
    both inputs at ``i``), so the output may share the bytes of that input when this is its
    last use and the element sizes match. Returns {output: tensor whose buffer it takes}."""
    life = lifetimes(g)
    root: dict[str, str] = {}
    for i, n in enumerate(g.nodes):
        if n.op in ("add", "tfl_add"):
            candidates = list(n.inputs)
        elif n.has_residual:
            candidates = [n.inputs[1]]
        else:
            continue
        out = g.tensors[n.output]
        for t in candidates:
            src = g.tensors[t]
            # not the model input (the caller's), last read here, read once (a tensor that is
            # also the conv's main input is read at other positions), same element size
            if (t != g.input and life[t][1] == i and n.inputs.count(t) == 1
                    and src.nbytes == out.nbytes and src.itemsize == out.itemsize):
                root[n.output] = root.get(t, t)
                break
    return root


def plan_arena(g: Graph) -> ArenaPlanner:
    """Plan the arena; tensors written in place share one buffer (see inplace_aliases)."""
    life = lifetimes(g)
    groups: dict[str, list[str]] = {}
    aliases = inplace_aliases(g)
    for t in life:
        groups.setdefault(aliases.get(t, t), []).append(t)
    planner = ArenaPlanner()
    for name, members in groups.items():
        planner.add(name, max(g.tensors[t].nbytes for t in members),
                    min(life[t][0] for t in members), max(life[t][1] for t in members))
    planner.plan()
    return planner


def tensor_offsets(g: Graph, planner: ArenaPlanner) -> dict[str, int]:
    aliases = inplace_aliases(g)
    return {t: planner.buffers[aliases.get(t, t)].offset for t in lifetimes(g)}
