"""Memory budget from the artifact alone: per-layer flash and RAM, the arena plan, the limits.

Flash of a layer: its packed weights (``stq_w_*``), its requantization parameters
(``stq_q_*``: mult, mult2, shift and the int64 offset that holds the folded bias), its
parameter record (``stq_p_*``) and, once an ELF is read (toolchain/budget/elf.py), the code of
the kernel it calls (a kernel shared by several layers is counted at its first user). The
model's own code besides (its share of the footprint): the helper functions and lookup tables
its kernels pull in (``stq_t2_masks``, ``stq_dot_t2u``, ...: codegen/support.py lists them) and
the schedule of model.c. RAM of a layer: its output tensor in the arena, and the arena bytes
alive while it runs; the optimized kernels share one static scratch buffer (``stq_scratch``, the
largest any layer needs), so the model's RAM is the arena plus that scratch. The numbers are the
ones codegen uses, so the linked ELF must show exactly the same symbol sizes.

Sizes: ``parse_size`` reads ``410KB`` as 410 * 1000 bytes (SI) and ``410KiB`` as 410 * 1024
(IEC); a bare number is bytes. The budget (default 410 KB, the paper's figure) applies to the
model's footprint: flash (weights, parameters, kernel code when known) plus RAM (arena and
scratch); the board limits to the whole firmware (with --elf its linked totals)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.codegen import writer as codegen
from toolchain.codegen.carrays import CArray
from toolchain.codegen.layers import record
from toolchain.errors import StqError
from toolchain.firmware.boards import Board, known_boards, load_board
from toolchain.ir.artifact import content_hash
from toolchain.ir.graph import Graph, Node
from toolchain.ir.packing import packed_size

DEFAULT_BUDGET = "410KB"
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6,
          "mib": 1024**2}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_ITEMSIZE = {"uint8_t": 1, "int8_t": 1, "int32_t": 4, "int64_t": 8}


def parse_size(text: str, what: str = "--budget") -> int:
    """'410KB' -> 410000, '410KiB' -> 419840, '0.5MB' -> 500000, '1024' -> 1024 bytes."""
    m = _SIZE_RE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise StqError(f"{what} {text!r} is not a size: use a number of bytes with an optional "
                       "unit B, KB, KiB, MB or MiB (KB = 1000 B, KiB = 1024 B), e.g. 410KB")
    value = float(m.group(1)) * _UNITS[unit]
    if value != int(value):
        raise StqError(f"{what} {text!r} is not a whole number of bytes")
    if value <= 0:
        raise StqError(f"{what} {text!r} must be more than 0 bytes, e.g. 410KB")
    return int(value)


@dataclass
class LayerBudget:
    index: int
    name: str
    op: str
    weight_kind: str  # ternary / binary / int8 / "" (no weights)
    params: int  # weights plus per-channel parameters (the Keras count, bias included)
    weights_bytes: int
    requant_bytes: int
    record_bytes: int
    act_bytes: int  # output tensor
    live_bytes: int  # arena bytes alive while the layer runs (its inputs and output, ...)
    kernel: str  # the function model.c calls (an optimized one may fall back to its reference)
    record_symbol: str = ""  # its parameter record
    ref_kernel: str = ""  # the reference kernel of the same contract
    code_bytes: int = 0  # from the ELF; the kernel's size if this is its first user
    weights_alt: dict[str, int] = field(default_factory=dict)  # packing -> weight bytes
    int8_bytes: int = 0  # int8 weights + int32 bias, the TFLite Micro equivalent

    @property
    def flash_bytes(self) -> int:
        return self.weights_bytes + self.requant_bytes + self.record_bytes + self.code_bytes


@dataclass
class Budget:
    model: str
    hash: str
    packing: str
    layers: list[LayerBudget]
    symbols: dict[str, int]  # predicted symbol sizes: stq_arena, stq_w_*, stq_q_*
    arena_bytes: int
    arena_greedy: int
    arena_lower_bound: int
    arena_optimal: bool | None
    arena_strategy: str
    offsets: dict[str, int]
    input_bytes: int
    scratch_bytes: int  # static scratch of the optimized kernels (stq_scratch, RAM)
    prefix: str = "stq_"  # the symbol prefix of the generated C
    kernels: dict[str, int] = field(default_factory=dict)  # kernel -> code bytes (ELF)
    shared_code: int = 0  # helper functions, tables and argmax of kernels.c (ELF)
    model_code: int = 0  # model.c: the schedule and its API, layer names, hash (ELF)
    kernel_functions: set[str] = field(default_factory=set)  # every kernel of kernels.c
    helper_functions: set[str] = field(default_factory=set)  # support functions of kernels.c
    tables: set[str] = field(default_factory=set)  # static tables (and scratch) of kernels.c
    model_functions: set[str] = field(default_factory=set)  # every function of model.c
    model_objects: set[str] = field(default_factory=set)  # objects of model.c
    ram_objects: set[str] = field(default_factory=set)  # model objects in RAM (arena, hooks)
    elf: dict | None = None  # filled by toolchain.budget.elf.reconcile

    @property
    def weights_bytes(self) -> int:
        return sum(x.weights_bytes for x in self.layers)

    @property
    def model_flash(self) -> int:
        return sum(x.flash_bytes for x in self.layers) + self.shared_code + self.model_code

    @property
    def model_ram(self) -> int:
        return self.arena_bytes + self.scratch_bytes

    @property
    def footprint(self) -> int:
        return self.model_flash + self.model_ram

    def packing_bytes(self, packing: str) -> int:
        """Weight bytes under ``packing``: an int8 layer keeps the bytes it emits (its rows may
        be padded for a kernel), a ternary layer takes its size in that packing."""
        return sum(x.weights_bytes if x.weight_kind == "int8" else
                   x.weights_alt.get(packing, x.weights_bytes) for x in self.layers)

    @property
    def int8_bytes(self) -> int:
        return sum(x.int8_bytes for x in self.layers)


def analyze(g: Graph, kernels: str = "optimized", prefix: str = "stq_",
            shared_arena: str | None = None, shared_scratch: str | None = None) -> Budget:
    """The analytic budget of an artifact: the exact numbers codegen emits for its C with these
    options (as convert.json recorded them, or an ensemble member's, budget/ensemble.py)."""
    cmodel = codegen.generate(g, kernels, prefix, shared_arena, shared_scratch)
    planner = cmodel.planner
    assert planner is not None
    greedy = planner.copy()
    greedy.plan("greedy")
    packing = g.options.get("packing", "2bit")
    by_symbol = {a.symbol: a for a in cmodel.arrays}
    layers = []
    for i, (n, cl) in enumerate(zip(g.nodes, cmodel.layers, strict=True)):
        arrs = [by_symbol[s] for s in cl.arrays]
        w = [a for a in arrs if a.symbol.startswith(f"{prefix}w_")]
        q = sum(_carray_bytes(a) for a in arrs if a.symbol.startswith(f"{prefix}q_"))
        layers.append(LayerBudget(
            index=i, name=n.name, op=n.op, weight_kind=n.attrs.get("weight_kind", "") or "",
            params=_param_count(n), weights_bytes=_carray_bytes(w[0]) if w else 0,
            requant_bytes=q, record_bytes=record.RECORD_BYTES,
            act_bytes=g.tensors[n.output].nbytes, live_bytes=_live_at(planner, i),
            kernel=cl.kernel, record_symbol=cl.params, ref_kernel=cl.ref_kernel,
            weights_alt=_alt_weights(n, packing), int8_bytes=_int8_bytes(n)))
    symbols = {a.symbol: _carray_bytes(a) for a in cmodel.arrays}
    if shared_arena is None:
        symbols[cmodel.sym("arena")] = cmodel.arena_bytes
    return Budget(
        model=g.name, hash=content_hash(g), packing=packing, prefix=prefix, layers=layers,
        symbols=symbols, arena_bytes=cmodel.arena_bytes, arena_greedy=max(greedy.total, 8),
        arena_lower_bound=planner.lower_bound(), arena_optimal=planner.optimal,
        arena_strategy=planner.strategy, offsets=dict(cmodel.offsets),
        input_bytes=g.tensors[g.input].nbytes, scratch_bytes=cmodel.scratch_bytes,
        kernel_functions=set(cmodel.kernel_functions),
        helper_functions=set(cmodel.helper_functions), tables=set(cmodel.tables),
        model_functions=set(cmodel.model_functions), model_objects=set(cmodel.model_objects),
        ram_objects={cmodel.sym("hook"), shared_arena or cmodel.sym("arena")})


def load_graph(path: Path) -> Graph:
    from toolchain.reference.model import load_artifact_dir

    return load_artifact_dir(path)


def analyze_outdir(path: Path) -> Budget:
    """The budget of a `stq convert` OUTDIR (or its artifact), with the C options it recorded,
    or of an ensemble folder (toolchain/budget/ensemble.py)."""
    from toolchain.budget import ensemble
    from toolchain.ir.outdir import resolve

    if ensemble.is_ensemble(path):
        return ensemble.analyze_ensemble(Path(path))

    return analyze(load_graph(path), **resolve(path).c_options())


def _carray_bytes(a: CArray) -> int:
    """Bytes of the C array as declared: ``count`` elements (an empty array still holds one)."""
    return a.count * _ITEMSIZE[a.ctype]


def _param_count(n: Node) -> int:
    w = n.arrays.get("weights")
    off = n.arrays.get("offset")
    return (int(w.size) if w is not None else 0) + (int(off.size) if w is not None
                                                     and off is not None else 0)


def _out_channels(n: Node) -> int:
    w = n.arrays["weights"]
    return int(w.shape[-1]) if n.op == "depthwise_conv2d" else int(w.shape[0])


def _int8_bytes(n: Node) -> int:
    w = n.arrays.get("weights")
    return 0 if w is None else int(w.size) + 4 * _out_channels(n)


def _alt_weights(n: Node, packing: str) -> dict[str, int]:
    """Weight bytes of this layer under each packing (int8 layers do not change)."""
    w = n.arrays.get("weights")
    if w is None:
        return {}
    if n.attrs.get("weight_kind") == "int8":
        return {p: int(w.size) for p in ("2bit", "base3")}
    if n.op == "depthwise_conv2d":
        return {p: packed_size(int(w.size), p) for p in ("2bit", "base3")}
    rows, cols = w.shape[0], int(w.size) // w.shape[0]
    return {p: rows * packed_size(cols, p) for p in ("2bit", "base3")}


def _live_at(planner, step: int) -> int:
    return sum(b.size for b in planner.buffers.values() if b.first <= step <= b.last)


# ---------------------------------------------------------------------------------- limits
@dataclass
class Check:
    what: str
    used: int
    limit: int

    @property
    def ok(self) -> bool:
        return self.used <= self.limit

    def line(self) -> str:
        pct = 100.0 * self.used / self.limit if self.limit else float("inf")
        state = "ok" if self.ok else f"OVER by {self.used - self.limit:,} B"
        return f"{self.what}: {self.used:,} / {self.limit:,} B ({pct:.1f} %) {state}"


def checks(b: Budget, budget: int, board: Board | None) -> list[Check]:
    out = [Check("model footprint (flash + arena + scratch) vs budget", b.footprint, budget)]
    if board is None:
        return out
    if b.elf is not None:
        flash, ram = b.elf["usage"]["FLASH"][0], b.elf["usage"]["RAM"][0]
        out.append(Check(f"{board.name} FLASH (linked ELF)", flash, board.flash.length))
        out.append(Check(f"{board.name} RAM (linked ELF, stack included)", ram, board.ram.length))
    else:
        out.append(Check(f"{board.name} FLASH (model only, no ELF)", b.model_flash,
                         board.flash.length))
        out.append(Check(f"{board.name} RAM (model + {board.stack_bytes} B stack, no ELF)",
                         b.model_ram + board.stack_bytes, board.ram.length))
    return out


def advice(b: Budget, results: list[Check], board: Board | None) -> list[str]:
    """What is largest, and what would fit: packing, arena, other boards."""
    lines = []
    top = sorted(b.layers, key=lambda x: -x.flash_bytes)[:3]
    peak = max(b.layers, key=lambda x: x.live_bytes)
    lines.append("largest contributors: flash " + ", ".join(
        f"{x.name} {x.flash_bytes:,} B" for x in top) + f"; RAM arena {b.arena_bytes:,} B "
        f"(peak while {peak.name} runs: {peak.live_bytes:,} B alive), scratch "
        f"{b.scratch_bytes:,} B")
    other = "base3" if b.packing == "2bit" else "2bit"
    save = b.weights_bytes - b.packing_bytes(other)
    if b.packing == "2bit" and save > 0:
        lines.append(f"base-3 packing (stq convert --packing base3) saves {save:,} B of flash")
    over = [c for c in results if not c.ok]
    for c in over:
        if c.what.startswith("model footprint"):
            need = c.used - c.limit
            verdict = "enough" if b.packing == "2bit" and save >= need else "not enough alone"
            lines.append(f"the footprint must shrink by {need:,} B"
                         + (f" (base-3 packing: {verdict})" if b.packing == "2bit" else ""))
    if board is not None and any(not c.ok for c in over if board.name in c.what):
        fits = [name for name in known_boards() if _fits(b, load_board(name))]
        lines.append("boards it fits: " + (", ".join(fits) if fits else "none of "
                                            + ", ".join(known_boards())))
    return lines


def _fits(b: Budget, board: Board) -> bool:
    if b.elf is not None:  # keep the measured runtime, swap the board's limits and stack
        from toolchain.firmware.project import BINARY_ONLY_STACK

        flash = b.elf["usage"]["FLASH"][0]
        stack = board.stack_bytes  # a binary-only product ELF keeps its small stack there too
        if b.elf["stack_bytes"] <= BINARY_ONLY_STACK:
            stack = min(stack, BINARY_ONLY_STACK)
        ram = b.elf["usage"]["RAM"][0] - b.elf["stack_bytes"] + stack
    else:
        flash, ram = b.model_flash, b.model_ram + board.stack_bytes
    return flash <= board.flash.length and ram <= board.ram.length
