"""Check the analytic budget against the linked firmware (ELF, and its map file when present).

The ELF must be the firmware of this very artifact: the hello string the runtime embeds
(``"STQ model=NAME hash=" STQ_MODEL_HASH``, firmware/src/protocol_text.c) must carry the
artifact's content hash, and every predicted symbol (``stq_arena``, ``stq_w_*``, ``stq_q_*``)
must exist with exactly the predicted size. Then the ELF gives what the artifact cannot: the
code of each kernel (function symbol sizes), the model's glue code, the stack and the rest of
the firmware runtime, and the FLASH / RAM totals.
"""

from __future__ import annotations

import re
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from toolchain.budget.analysis import Budget
from toolchain.errors import StqError
from toolchain.firmware.boards import Board
from toolchain.firmware.build import usage_from_sections

_HASH_RE = re.compile(rb"STQ model=([^\s\x00]*) hash=([0-9a-f]{64})")
_BOARD_RE = re.compile(rb" board=([\w.-]+) build=")


class ElfImage:
    """Symbols, allocated sections and the embedded model hash / board of a linked ELF."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StqError(f"--elf {self.path} does not exist (build it with `stq build`)")
        try:
            with open(self.path, "rb") as f:
                elf = ELFFile(f)
                symtab = elf.get_section_by_name(".symtab")
                if symtab is None:
                    raise StqError(f"--elf {self.path} has no symbol table (it was stripped); "
                                   "use the firmware.elf `stq build` writes")
                self.objects: dict[str, int] = {}
                self.functions: dict[str, int] = {}
                for s in symtab.iter_symbols():
                    kind = s["st_info"]["type"]
                    table = {"STT_OBJECT": self.objects, "STT_FUNC": self.functions}.get(kind)
                    if table is not None and s.name:
                        table[s.name] = table.get(s.name, 0) + int(s["st_size"])
                self.sections: dict[str, tuple[int, int]] = {}
                data = b""
                for sec in elf.iter_sections():
                    if sec["sh_flags"] & SH_FLAGS.SHF_ALLOC and sec["sh_size"]:
                        self.sections[sec.name] = (int(sec["sh_addr"]), int(sec["sh_size"]))
                        if sec["sh_type"] == "SHT_PROGBITS":
                            data += sec.data()
        except ELFError as exc:
            raise StqError(f"--elf {self.path} is not an ELF file ({exc})") from None
        m = _HASH_RE.search(data)
        self.model = m.group(1).decode() if m else None
        self.hash = m.group(2).decode() if m else None
        b = _BOARD_RE.search(data)
        self.board = b.group(1).decode() if b else None

    def usage(self, board: Board) -> dict[str, tuple[int, int]]:
        """Bytes used in FLASH and RAM (as toolchain.build.region_usage, from the sections)."""
        return usage_from_sections(self.sections, board)


def reconcile(b: Budget, elf: ElfImage, board: Board, map_path: Path | None = None) -> dict:
    """Check the ELF against the prediction, fill the code sizes; return the ELF summary.

    Raises StqError when the ELF is not this artifact's firmware or a size differs."""
    if elf.hash is None:
        raise StqError(f"--elf {elf.path} holds no stq model hash ('STQ model=... hash=<64 hex>')"
                       "; it is not firmware built by `stq build`")
    if elf.hash != b.hash:
        raise StqError(f"--elf {elf.path} was built from model hash {elf.hash[:16]}... but the "
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
    extra = sorted(s for s in elf.objects if s.startswith(("stq_w_", "stq_q_"))
                   and s not in b.symbols)
    if extra:
        raise StqError(f"--elf {elf.path} has model symbols the artifact does not predict: "
                       f"{', '.join(extra[:3])}; rebuild the firmware from this artifact")
    bad = [r for r in rows if r["predicted"] != r["elf"]]
    if bad:
        r = bad[0]
        raise StqError(f"--elf {elf.path}: symbol {r['symbol']} is {r['elf']:,} B, predicted "
                       f"{r['predicted']:,} B ({len(bad)} symbol(s) differ)")

    # code: each layer's kernel (and the reference it falls back to), once per kernel
    fn = elf.functions
    seen: set[str] = set()
    for layer in b.layers:
        layer.code_bytes = 0
        if layer.kernel in seen or not layer.kernel:
            continue
        ref = re.sub(r"_fastu?$", "", layer.kernel)
        family = [layer.kernel] + ([ref] if ref != layer.kernel else [])
        seen.update(family)
        layer.code_bytes = sum(fn.get(f, 0) for f in family)
        b.kernels[layer.kernel] = layer.code_bytes
    b.shared_code = sum(fn.get(f, 0) for f in b.kernel_functions - seen)
    for layer in b.layers:
        layer.record_bytes = elf.objects.get(_record_symbol(layer), layer.record_bytes)
    usage = elf.usage(board)
    model_code = sum(fn.get(f, 0) for f in b.model_functions)
    stack = elf.sections.get(".stack", (0, board.stack_bytes))[1]
    names = elf.objects.get("stq_layer_names", 0)
    scratch = elf.objects.get("stq_scratch", 0)
    runtime_flash = usage["FLASH"][0] - b.model_flash - model_code - names
    runtime_ram = usage["RAM"][0] - b.arena_bytes - scratch - stack
    b.elf = {
        "path": str(elf.path), "hash": elf.hash, "board": elf.board or board.name,
        "symbols": rows, "usage": usage, "kernel_code": sum(b.kernels.values()),
        "shared_kernel_code": b.shared_code, "model_code": model_code,
        "layer_names": names, "scratch": scratch, "stack_bytes": stack,
        "runtime_flash": runtime_flash, "runtime_ram": runtime_ram,
        "map": _map_summary(map_path) if map_path else None,
    }
    return b.elf


def _record_symbol(layer) -> str:
    from toolchain.codegen.carrays import cname

    return f"stq_p_{layer.index}_{cname(layer.name)}"


def _map_summary(path: Path) -> dict | None:
    """Bytes the linker placed per object file (the map's input-section lines), if readable."""
    if not path.is_file():
        return None
    per: dict[str, int] = {}
    pending = False
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        # " .text.name  0xADDR  0xSIZE obj/x.o" or a long name alone, then "0xADDR 0xSIZE obj"
        if len(parts) == 4 and parts[0].startswith(".") and parts[1].startswith("0x"):
            pending = False
            addr, size, obj = parts[1], parts[2], parts[3]
        elif len(parts) == 1 and parts[0].startswith("."):
            pending = True
            continue
        elif pending and len(parts) == 3 and parts[0].startswith("0x"):
            pending = False
            addr, size, obj = parts
        else:
            pending = False
            continue
        if not obj.endswith(".o") and ".a(" not in obj:
            continue
        try:
            if int(addr, 16) == 0:
                continue  # discarded or debug
            per[obj.split("/")[-1]] = per.get(obj.split("/")[-1], 0) + int(size, 16)
        except ValueError:
            continue
    return {"per_object": dict(sorted(per.items(), key=lambda kv: -kv[1]))}
