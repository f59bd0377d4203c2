"""Check the analytic budget against the linked firmware (ELF, and its map file when present).

The ELF must be the firmware of this very artifact: the image keeps the artifact's content
hash in the symbol ``<prefix>model_hash`` (section ``.stq_model``), and every predicted symbol
(``<prefix>arena``, ``<prefix>w_*``, ``<prefix>q_*``) must exist with exactly the predicted
size. Then the ELF gives what the artifact cannot: the code of each kernel, of the helpers and
tables the kernels pull in, of the model's schedule (model.c), the stack and the rest of the
firmware runtime, and the FLASH / RAM totals. Everything the generated C defines is booked to
the model (codegen's CModel lists it; nothing is read back from the C text).
"""

from __future__ import annotations

import re
from pathlib import Path

from toolchain.budget.analysis import Budget
from toolchain.errors import StqError
from toolchain.firmware.boards import Board
from toolchain.firmware.elf import ElfImage

__all__ = ["ElfImage", "reconcile", "map_summary"]
_ARRAY_RE = re.compile(r"^([a-z][a-z0-9]*_)[wq]_")


def _size(elf: ElfImage, name: str) -> int:
    return elf.functions.get(name, 0) + elf.objects.get(name, 0)


def reconcile(b: Budget, elf: ElfImage, board: Board, map_path: Path | None = None) -> dict:
    """Check the ELF against the prediction, fill the code sizes; return the ELF summary.

    Raises StqError when the ELF is not this artifact's firmware or a size differs."""
    have = elf.model_hash(b.prefix)
    if have is None:
        raise StqError(f"--elf {elf.path} holds no stq model hash (symbol {b.prefix}model_hash "
                       "in section .stq_model); it is not firmware built by `stq build` from "
                       "this stq version")
    if have != b.hash:
        raise StqError(f"--elf {elf.path} was built from model hash {have[:16]}... but the "
                       f"artifact's hash is {b.hash[:16]}...; rebuild it: stq build OUTDIR "
                       f"--board {elf.board or board.name}")
    if elf.board is not None and elf.board != board.name:
        raise StqError(f"--elf {elf.path} was built for board {elf.board}, not --board "
                       f"{board.name}")
    rows = []
    for sym, predicted in sorted(b.symbols.items()):
        if sym not in elf.objects:
            raise StqError(f"--elf {elf.path} has no symbol {sym} (predicted {predicted:,} B); "
                           "rebuild the firmware from this artifact")
        rows.append({"symbol": sym, "predicted": predicted, "elf": elf.objects[sym]})
    # every model prefix (an ensemble's members have their own: m1_, m2_, ...)
    prefixes = {b.prefix} | {m.group(1) for m in map(_ARRAY_RE.match, b.symbols) if m}
    arrays = tuple(f"{p}{k}_" for p in sorted(prefixes) for k in "wq")
    extra = sorted(s for s in elf.objects if s.startswith(arrays) and s not in b.symbols)
    if extra:
        raise StqError(f"--elf {elf.path} has model symbols the artifact does not predict: "
                       f"{', '.join(extra[:3])}; rebuild the firmware from this artifact")
    bad = [r for r in rows if r["predicted"] != r["elf"]]
    if bad:
        r = bad[0]
        raise StqError(f"--elf {elf.path}: symbol {r['symbol']} is {r['elf']:,} B, predicted "
                       f"{r['predicted']:,} B ({len(bad)} symbol(s) differ)")

    # code: each layer's kernel (and the reference it falls back to), once per kernel
    seen: set[str] = set()
    b.kernels = {}
    for layer in b.layers:
        layer.code_bytes = 0
        if layer.kernel in seen or not layer.kernel:
            continue
        family = {layer.kernel, layer.ref_kernel or layer.kernel}
        seen |= family
        layer.code_bytes = sum(elf.functions.get(f, 0) for f in family)
        b.kernels[layer.kernel] = layer.code_bytes
    for layer in b.layers:
        layer.record_bytes = elf.objects.get(layer.record_symbol, layer.record_bytes)
    scratch = f"{b.prefix}scratch"
    flash_tables = b.tables - {scratch}
    b.shared_code = (sum(elf.functions.get(f, 0) for f in b.kernel_functions - seen)
                     + sum(elf.functions.get(f, 0) for f in b.helper_functions)
                     + sum(elf.objects.get(t, 0) for t in flash_tables))
    ram_objects = b.ram_objects or {f"{b.prefix}arena", f"{b.prefix}hook"}
    b.model_code = (sum(elf.functions.get(f, 0) for f in b.model_functions)
                    + sum(elf.objects.get(o, 0) for o in b.model_objects - ram_objects))
    model_ram_static = sum(elf.objects.get(o, 0) for o in ram_objects | {scratch})
    usage = elf.usage(board)
    stack = elf.sections.get(".stack", (0, board.stack_bytes))[1]
    b.elf = {
        "path": str(elf.path), "hash": have, "board": elf.board or board.name,
        "symbols": rows, "usage": usage, "kernel_code": sum(b.kernels.values()),
        "shared_kernel_code": b.shared_code, "model_code": b.model_code,
        "tables": {t: elf.objects.get(t, 0) for t in sorted(b.tables) if t in elf.objects},
        "scratch": elf.objects.get(scratch, 0), "stack_bytes": stack,
        "model_ram": model_ram_static,
        "runtime_flash": usage["FLASH"][0] - b.model_flash,
        "runtime_ram": usage["RAM"][0] - model_ram_static - stack,
        "map": map_summary(map_path, elf) if map_path else None,
    }
    return b.elf


def model_symbol_sizes(b: Budget, elf: ElfImage) -> dict[str, int]:
    """Size in the ELF of every symbol the generated C defines (0 if inlined or dropped)."""
    names = (set(b.symbols) | {x.record_symbol for x in b.layers} | b.kernel_functions
             | b.helper_functions | b.tables | b.model_functions | b.model_objects)
    return {n: _size(elf, n) for n in sorted(names) if _size(elf, n)}


def map_summary(path: Path, elf: ElfImage) -> dict | None:
    """Bytes the linker placed per object file, from the map's "Linker script and memory map"
    part, counting only input sections inside the ELF's allocated output sections (debug
    sections, .comment, attributes and discarded input sections are left out)."""
    if not path.is_file():
        return None
    per: dict[str, int] = {}
    text = path.read_text(errors="replace")
    start = text.find("Linker script and memory map")
    allocated = set(elf.sections)
    current = ""
    pending = False
    for line in text[start if start >= 0 else 0:].splitlines():
        parts = line.split()
        if line and not line[0].isspace() and parts and parts[0].startswith("."):
            current = parts[0]  # an output section
            pending = False
            continue
        if len(parts) == 4 and parts[0].startswith(".") and parts[1].startswith("0x"):
            pending = False
            _, addr, size, obj = parts
        elif len(parts) == 1 and parts[0].startswith("."):
            pending = True
            continue
        elif pending and len(parts) == 3 and parts[0].startswith("0x"):
            pending = False
            addr, size, obj = parts
        else:
            pending = False
            continue
        if current not in allocated or not (obj.endswith(".o") or ".a(" in obj):
            continue
        try:
            n = int(size, 16)
            int(addr, 16)
        except ValueError:
            continue
        key = obj.split("/")[-1]
        per[key] = per.get(key, 0) + n
    return {"per_object": dict(sorted(per.items(), key=lambda kv: -kv[1]))}
