"""The arena planner ("best"): never overlaps live buffers, reaches the lower bound on sequential
networks, and is optimal on small graphs (exhaustive search and an ILP agree)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from toolchain.memory.planner import ArenaPlanner, _first_fit, _height

ALIGN = 8
buffers = st.lists(st.tuples(st.integers(1, 400), st.integers(0, 12), st.integers(0, 4)),
                   min_size=1, max_size=14)
small = st.lists(st.tuples(st.integers(1, 20).map(lambda k: 8 * k - (k % 3)),
                           st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=6)


def _planner(spec: list[tuple[int, int, int]], search_nodes: int = 5_000) -> ArenaPlanner:
    p = ArenaPlanner(search_nodes=search_nodes)
    for i, (size, first, length) in enumerate(spec):
        p.add(f"b{i}", size, first, first + length)
    return p


def _assert_valid(p: ArenaPlanner) -> None:
    bufs = list(p.buffers.values())
    for x in bufs:
        assert x.offset % ALIGN == 0 and x.offset + x.size <= p.total
        for y in bufs:
            if x is not y and x.overlaps(y):
                assert x.offset + x.size <= y.offset or y.offset + y.size <= x.offset, (x, y)


@settings(max_examples=200, deadline=None)
@given(buffers)
def test_best_plan_never_overlaps_live_buffers(spec: list[tuple[int, int, int]]) -> None:
    p = _planner(spec, search_nodes=300)
    p.plan()
    _assert_valid(p)
    g = p.copy()
    g.plan("greedy")
    _assert_valid(g)
    assert p.lower_bound() <= p.total <= g.total


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=24),
       st.lists(st.integers(0, 3), min_size=24, max_size=24))
def test_sequential_networks_reach_the_lower_bound(sizes: list[int], skips: list[int]) -> None:
    """A chain, some tensors also feeding a later layer (residual branches)."""
    p = ArenaPlanner(search_nodes=300)
    for i, size in enumerate(sizes):
        p.add(f"t{i}", size, i, min(len(sizes), i + 1 + skips[i] * (i % 2)))
    p.plan()
    _assert_valid(p)
    if not any(skips[i] * (i % 2) for i in range(len(sizes))):  # a plain chain
        assert p.total == p.lower_bound() and p.optimal


def _exhaustive(p: ArenaPlanner) -> int:
    """First-fit over every order reaches the optimum (see toolchain/arena.py)."""
    bufs = list(p.buffers.values())
    return min(_height(bufs, _first_fit(bufs, list(o), ALIGN), ALIGN)
               for o in itertools.permutations(range(len(bufs))))


def _ilp(p: ArenaPlanner) -> int:
    """min H s.t. 8*k_i + s_i <= 8*H and live pairs do not overlap (big-M disjunction)."""
    bufs = list(p.buffers.values())
    n = len(bufs)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if bufs[i].overlaps(bufs[j])]
    big = sum(-(-b.size // ALIGN) * ALIGN for b in bufs) + ALIGN
    nv = n + 1 + len(pairs)  # k_0..k_n-1, H, z per pair
    rows, lo, hi = [], [], []
    for i, b in enumerate(bufs):
        r = np.zeros(nv)
        r[i], r[n] = ALIGN, -ALIGN
        rows.append(r), lo.append(-np.inf), hi.append(-b.size)
    for z, (i, j) in enumerate(pairs):
        r = np.zeros(nv)  # i below j: 8k_i + s_i <= 8k_j + M z
        r[i], r[j], r[n + 1 + z] = ALIGN, -ALIGN, -big
        rows.append(r), lo.append(-np.inf), hi.append(-bufs[i].size)
        r = np.zeros(nv)  # j below i: 8k_j + s_j <= 8k_i + M (1 - z)
        r[j], r[i], r[n + 1 + z] = ALIGN, -ALIGN, big
        rows.append(r), lo.append(-np.inf), hi.append(big - bufs[j].size)
    c = np.zeros(nv)
    c[n] = 1
    upper = np.full(nv, big // ALIGN)
    upper[n + 1:] = 1
    res = milp(c, constraints=LinearConstraint(np.array(rows), lo, hi),
               integrality=np.ones(nv), bounds=Bounds(np.zeros(nv), upper))
    assert res.success
    return int(round(res.fun)) * ALIGN


@settings(max_examples=60, deadline=None)
@given(small)
def test_best_plan_is_optimal_on_small_graphs(spec: list[tuple[int, int, int]]) -> None:
    p = _planner(spec)
    p.plan()
    assert p.optimal
    assert p.total == _exhaustive(p) == _ilp(p)


def test_best_beats_greedy_where_greedy_is_not_optimal() -> None:
    spec = [(64, 2, 5), (32, 5, 7), (3, 4, 5), (48, 2, 3), (16, 4, 7), (12, 2, 4)]
    p = ArenaPlanner()
    for i, (size, first, last) in enumerate(spec):
        p.add(f"b{i}", size, first, last)
    p.plan()
    g = p.copy()
    g.plan("greedy")
    assert g.total == 136 and p.total == p.lower_bound() == 128 == _ilp(p)


def test_search_proves_optimality_above_the_lower_bound() -> None:
    """Three buffers pairwise alive together only two at a time, sizes that cannot pack to the
    bound: the search must finish and call the plan optimal."""
    p = ArenaPlanner()
    for name, size, first, last in (("a", 16, 0, 1), ("b", 24, 1, 2), ("c", 24, 2, 3),
                                    ("d", 16, 3, 4), ("e", 24, 0, 0), ("f", 24, 4, 4)):
        p.add(name, size, first, last)
    p.plan()
    _assert_valid(p)
    assert p.optimal and p.total == _exhaustive(p) == _ilp(p)


def test_codegen_uses_the_best_plan(digits_graph) -> None:
    from toolchain.codegen import writer as codegen
    from toolchain.memory import lifetimes

    planner = lifetimes.plan_arena(digits_graph)
    model = codegen.generate(digits_graph)
    assert planner.optimal and model.arena_bytes == max(planner.total, 8)
    assert f"#define STQ_ARENA_BYTES {model.arena_bytes}u" in model.files["model.h"]
    assert model.offsets == {n: b.offset for n, b in planner.buffers.items()}
