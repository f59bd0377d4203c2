"""What the code generator produced: the C files and which symbol belongs to which layer,
kernel, helper or table (so nothing downstream reads the C back)."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolchain.codegen.carrays import CArray
from toolchain.codegen.support import MODEL_FUNCTIONS, MODEL_OBJECTS, Support
from toolchain.memory.planner import ArenaPlanner


@dataclass
class Layer:
    name: str
    op: str
    params: str  # the symbol of its parameter record
    kernel: str  # the function model.c calls for it
    ref_kernel: str  # the reference kernel of the same contract (== kernel when no variant)
    call: str
    out_offset: int
    out_bytes: int
    out_shape: str
    out_dtype: str
    p: dict = field(default_factory=dict)
    arrays: list[str] = field(default_factory=list)  # its weight and requantization arrays


@dataclass
class CModel:
    """What the generator produced: sources plus the structure the budget checker needs."""

    files: dict[str, str]
    prefix: str
    arena_bytes: int
    offsets: dict[str, int]
    arrays: list[CArray]
    layers: list[Layer]
    weight_bytes: dict[str, int]  # per layer: packed weights + requantization parameters
    kernel_functions: list[str]   # every kernel function kernels.c defines
    support: Support              # helpers and tables of kernels.c (unprefixed names)
    kernels: str = "optimized"    # "optimized" (fast kernels where there is one) or "reference"
    scratch_bytes: int = 0        # static scratch of the optimized kernels (RAM)
    planner: ArenaPlanner | None = None  # the arena plan the offsets come from
    arena: str = ""               # the arena symbol: <prefix>arena, or a shared one (ensemble)

    def sym(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def helper_functions(self) -> list[str]:
        return sorted(self.sym(f) for f in self.support.functions)

    @property
    def tables(self) -> list[str]:
        return sorted(self.sym(t) for t in self.support.tables)

    @property
    def model_functions(self) -> list[str]:
        return [self.sym(f) for f in MODEL_FUNCTIONS]

    @property
    def model_objects(self) -> list[str]:
        own = {self.sym("arena")} - {self.arena} if self.arena else set()
        return [self.sym(o) for o in MODEL_OBJECTS if self.sym(o) not in own]

    def symbols(self) -> set[str]:
        """Every symbol the generated C may define (a helper the compiler inlined, or code
        the linker dropped as unused, has none in the ELF)."""
        return ({a.symbol for a in self.arrays} | {x.params for x in self.layers}
                | set(self.kernel_functions) | set(self.helper_functions) | set(self.tables)
                | set(self.model_functions) | set(self.model_objects))
