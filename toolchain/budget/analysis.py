"""Memory budget from the artifact alone: per-layer flash and RAM, the arena plan, the limits.

Flash of a layer: its packed weights (``stq_w_*``), its requantization parameters
(``stq_q_*``: mult, mult2, shift and the int64 offset that holds the folded bias), its
parameter record (``stq_p_*``) and, once an ELF is read (toolchain/budget_elf.py), the code of
the kernel it calls (a kernel shared by several layers is counted at its first user). RAM of a
layer: its output tensor in the arena, and the arena bytes alive while it runs; the optimized
kernels share one static scratch buffer (``stq_scratch``, the largest any layer needs), so the
model's RAM is the arena plus that scratch. The numbers are the
ones codegen uses, so the linked ELF must show exactly the same symbol sizes.

Sizes: ``parse_size`` reads ``410KB`` as 410 * 1000 bytes (SI: KB = 1000, MB = 1000^2) and
``410KiB`` as 410 * 1024 (IEC); a bare number is bytes. The budget (default 410 KB, the paper's
figure) applies to the model's footprint: its flash (weights, parameters, kernel code when
known) plus its RAM (arena and scratch). The board limits apply to the whole firmware (linked totals
with --elf; the model's part plus the board's stack without).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.codegen import writer as codegen
from toolchain.codegen.carrays import CArray, cname
from toolchain.errors import StqError
from toolchain.firmware.boards import Board, known_boards, load_board
from toolchain.ir.artifact import content_hash
from toolchain.ir.graph import Graph, Node
from toolchain.ir.packing import packed_size

DEFAULT_BUDGET = "410KB"
PARAMS_RECORD_BYTES = 15 * 4 + 5 * 4  # stq_layer_params_t on a 32-bit MCU: 15 int32, 5 ptrs
_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
          "k": 1000, "m": 1000**2}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_ITEMSIZE = {"uint8_t": 1, "int8_t": 1, "int32_t": 4, "int64_t": 8}
_CALL_RE = re.compile(r"^\s*(\w+)\([^;\n]*&(stq_p_\w+)\)\s*;", re.MULTILINE)


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
    kernels: dict[str, int] = field(default_factory=dict)  # kernel -> code bytes (ELF)
    shared_code: int = 0  # helpers and argmax in kernels.c (ELF)
    kernel_functions: set[str] = field(default_factory=set)  # every function of kernels.c
    model_functions: set[str] = field(default_factory=set)  # every function of model.c
    elf: dict | None = None  # filled by budget_elf.reconcile

    @property
    def weights_bytes(self) -> int:
        return sum(x.weights_bytes for x in self.layers)

    @property
    def model_flash(self) -> int:
        return sum(x.flash_bytes for x in self.layers) + self.shared_code

    @property
    def model_ram(self) -> int:
        return self.arena_bytes + self.scratch_bytes

    @property
    def footprint(self) -> int:
        return self.model_flash + self.model_ram

    def packing_bytes(self, packing: str) -> int:
        return sum(x.weights_alt.get(packing, x.weights_bytes) for x in self.layers)

    @property
    def int8_bytes(self) -> int:
        return sum(x.int8_bytes for x in self.layers)


def analyze(g: Graph) -> Budget:
    """The analytic budget of an artifact (the exact numbers codegen will emit)."""
    cmodel = codegen.generate(g)
    planner = cmodel.planner
    assert planner is not None
    greedy = planner.copy()
    greedy.plan("greedy")
    packing = g.options.get("packing", "2bit")
    by_symbol = {a.symbol: a for a in cmodel.arrays}
    calls = {p: fn for fn, p in _CALL_RE.findall(cmodel.files["model.c"])}
    layers = []
    for i, n in enumerate(g.nodes):
        base = f"{i}_{cname(n.name)}"
        w = by_symbol.get(f"stq_w_{base}")
        q = sum(_carray_bytes(by_symbol[s]) for s in by_symbol if s.startswith(f"stq_q_{base}_"))
        layers.append(LayerBudget(
            index=i, name=n.name, op=n.op, weight_kind=n.attrs.get("weight_kind", "") or "",
            params=_param_count(n), weights_bytes=_carray_bytes(w) if w else 0,
            requant_bytes=q, record_bytes=PARAMS_RECORD_BYTES,
            act_bytes=g.tensors[n.output].nbytes, live_bytes=_live_at(planner, i),
            kernel=calls.get(f"stq_p_{base}", ""), weights_alt=_alt_weights(n, packing),
            int8_bytes=_int8_bytes(n)))
    symbols = {a.symbol: _carray_bytes(a) for a in cmodel.arrays}
    symbols["stq_arena"] = cmodel.arena_bytes
    return Budget(
        model=g.name, hash=content_hash(g), packing=packing, layers=layers, symbols=symbols,
        arena_bytes=cmodel.arena_bytes, arena_greedy=max(greedy.total, 8),
        arena_lower_bound=planner.lower_bound(), arena_optimal=planner.optimal,
        arena_strategy=planner.strategy, offsets=dict(cmodel.offsets),
        input_bytes=g.tensors[g.input].nbytes,
        scratch_bytes=int(getattr(cmodel, "scratch_bytes", 0)),
        kernel_functions=_functions(cmodel.files["kernels.c"]),
        model_functions=_functions(cmodel.files["model.c"]))


def load_graph(path: Path) -> Graph:
    from toolchain.reference.model import load_artifact_dir

    p = Path(path)
    if not p.exists():
        raise StqError(f"{p} does not exist (expected OUTDIR of `stq convert` or "
                       "OUTDIR/model.stqa)")
    if p.is_dir() and not (p / "model.stqa").is_file():
        raise StqError(f"{p} has no model.stqa (expected OUTDIR of `stq convert`)")
    return load_artifact_dir(p)


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


_FN_RE = re.compile(r"^(?:static\s+)?(?:inline\s+)?[A-Za-z_][\w \*]*?\b(\w+)\([^;{]*\)\s*$",
                    re.MULTILINE)


def _functions(source: str) -> set[str]:
    """Names of the functions defined in a generated C file (definitions, not prototypes)."""
    return set(_FN_RE.findall(source))


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
        flash = b.elf["usage"]["FLASH"][0]
        ram = b.elf["usage"]["RAM"][0] - b.elf["stack_bytes"] + board.stack_bytes
    else:
        flash, ram = b.model_flash, b.model_ram + board.stack_bytes
    return flash <= board.flash.length and ram <= board.ram.length
