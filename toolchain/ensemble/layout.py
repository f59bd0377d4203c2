"""The RAM of an ensemble firmware (docs/semantics.md, "Ensemble"): the members run one after
another on the same input, so they share one arena and one kernel scratch buffer.

``stq_arena`` (one symbol, 8-aligned) is laid out as

    [0, members)            every member's activations (the largest member arena, 8-aligned)
    [input, input + I)      the ensemble's input, kept while the members overwrite the arena
    [acc, acc + 8 * C)      int64 accumulators: sum_m k_m * y_m[c], added after each member
    [output, output + 4*C)  the combined int32 output

and ``stq_scratch`` (uint64 words) is the largest scratch any member's optimized kernels need.
The wrapper (templates/schedule/ensemble.c.j2) and the budget (toolchain/budget/ensemble.py)
both take their numbers from :func:`layout`.
"""

from __future__ import annotations

from dataclasses import dataclass

ARENA = "stq_arena"
SCRATCH = "stq_scratch"


def _align8(n: int) -> int:
    return (n + 7) // 8 * 8


@dataclass(frozen=True)
class Layout:
    members: int  # bytes of the members' region (the largest member arena, 8-aligned)
    input_offset: int
    input_bytes: int
    acc_offset: int
    output_offset: int
    classes: int
    total: int  # bytes of stq_arena
    scratch_words: int  # uint64 words of stq_scratch (at least 1)

    @property
    def scratch_bytes(self) -> int:
        return 8 * self.scratch_words

    @property
    def overhead(self) -> int:
        """Bytes beyond the largest member's arena: input, accumulators, output, alignment."""
        return self.total - self.members

    def offsets(self) -> dict[str, int]:
        return {"ensemble:input": self.input_offset, "ensemble:acc": self.acc_offset,
                "ensemble:output": self.output_offset}


def layout(arenas: list[int], scratches: list[int], input_bytes: int, classes: int) -> Layout:
    """The shared arena and scratch of members with these arena and scratch bytes."""
    members = _align8(max(arenas))
    acc = members + _align8(input_bytes)
    out = acc + 8 * classes
    words = max([1] + [-(-s // 8) for s in scratches])
    return Layout(members, members, input_bytes, acc, out, classes, _align8(out + 4 * classes),
                  words)
