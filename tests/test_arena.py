"""The arena planner never overlaps two buffers that are alive at the same time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.memory.planner import ArenaPlanner

buffers = st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 20), st.integers(0, 5)),
                   min_size=1, max_size=25)


@settings(max_examples=300, deadline=None)
@given(buffers)
def test_no_live_overlap_and_bounds(spec: list[tuple[int, int, int]]) -> None:
    p = ArenaPlanner()
    for i, (size, first, length) in enumerate(spec):
        p.add(f"b{i}", size, first, first + length)
    offsets = p.plan()
    bufs = list(p.buffers.values())
    for x in bufs:
        assert offsets[x.name] % 8 == 0
        for y in bufs:
            if x is y or x.last < y.first or y.last < x.first:
                continue
            assert (offsets[x.name] + x.size <= offsets[y.name]
                    or offsets[y.name] + y.size <= offsets[x.name]), (x, y)
    assert p.total >= p.lower_bound()


def test_sequential_chain_uses_two_buffers() -> None:
    p = ArenaPlanner()
    for i, size in enumerate([800, 1600, 400, 1600, 80]):
        p.add(f"t{i}", size, i, i + 1)
    p.plan()
    assert p.total == p.lower_bound() == 800 + 1600
