"""The one ELF reader (pyelftools): symbols with their sizes, allocated sections, the region
usage of a board, and the identity strings an stq image carries in its ``.stq_model`` section
(``<prefix>model_hash``: the artifact's content hash; ``stq_board_name``, ``stq_build_id``)."""

from __future__ import annotations

from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from toolchain.errors import StqError
from toolchain.firmware.boards import Board

IDENTITY_SECTION = ".stq_model"


class ElfImage:
    """What stq needs from a linked firmware ELF, read once."""

    def __init__(self, path: Path, what: str = "--elf") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StqError(f"{what} {self.path} does not exist (build it with `stq build`)")
        self.objects: dict[str, int] = {}  # STT_OBJECT name -> size (summed over locals)
        self.functions: dict[str, int] = {}  # STT_FUNC name -> size
        self.sections: dict[str, tuple[int, int]] = {}  # allocated: name -> (address, size)
        self._strings: dict[str, str] = {}
        try:
            with open(self.path, "rb") as f:
                self._read(ELFFile(f), what)
        except (ELFError, OSError, ValueError) as exc:
            raise StqError(f"{what} {self.path} is not an ELF file ({exc})") from None

    def _read(self, elf: ELFFile, what: str) -> None:
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            raise StqError(f"{what} {self.path} has no symbol table (it was stripped); use the "
                           "firmware.elf `stq build` writes")
        ident = elf.get_section_by_name(IDENTITY_SECTION)
        ident_data = ident.data() if ident is not None else b""
        ident_addr = int(ident["sh_addr"]) if ident is not None else 0
        for sec in elf.iter_sections():
            if sec["sh_flags"] & SH_FLAGS.SHF_ALLOC and sec["sh_size"]:
                self.sections[sec.name] = (int(sec["sh_addr"]), int(sec["sh_size"]))
        for s in symtab.iter_symbols():
            kind = s["st_info"]["type"]
            table = {"STT_OBJECT": self.objects, "STT_FUNC": self.functions}.get(kind)
            if table is None or not s.name:
                continue
            # GCC's clones (f.constprop.0, f.isra.0, f.part.0) are the code of f
            name = s.name.split(".", 1)[0] if kind == "STT_FUNC" else s.name
            table[name] = table.get(name, 0) + int(s["st_size"])
            off = int(s["st_value"]) - ident_addr
            if kind == "STT_OBJECT" and ident is not None and 0 <= off < len(ident_data):
                raw = ident_data[off:off + int(s["st_size"])]
                self._strings[s.name] = raw.split(b"\0", 1)[0].decode("ascii", "replace")

    def string(self, symbol: str) -> str | None:
        """A NUL-terminated string the image keeps in its identity section, or None."""
        return self._strings.get(symbol)

    def model_hash(self, prefix: str = "stq_") -> str | None:
        return self.string(f"{prefix}model_hash")

    @property
    def board(self) -> str | None:
        return self.string("stq_board_name")

    def usage(self, board: Board) -> dict[str, tuple[int, int]]:
        """Bytes used in FLASH and RAM: (used, size) per region, from the allocated sections;
        .data counts twice: in RAM, and in flash for its initial values."""
        flash = ram = 0
        for name, (addr, size) in self.sections.items():
            if board.flash.origin <= addr < board.flash.origin + board.flash.length:
                flash += size
            elif board.ram.origin <= addr < board.ram.origin + board.ram.length:
                ram += size
                if name == ".data":
                    flash += size
        return {"FLASH": (flash, board.flash.length), "RAM": (ram, board.ram.length)}
