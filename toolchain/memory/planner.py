"""Static arena planning behind a tiny interface: add buffers with lifetimes, get offsets.

Buffers whose lifetimes (inclusive [first, last] step ranges) overlap never share bytes. Every
offset is a multiple of ``align`` (8) and the total is rounded up to it.

``plan()`` (strategy ``"best"``) aims for the lower bound, the most bytes alive at one step:

1. it places the buffers first-fit (each at the lowest aligned offset that is free for its
   whole lifetime) in several orders: largest first (``"greedy"``, the TFLite Micro planner,
   kept as a strategy of its own for comparison), earliest first, longest-lived first, most
   size x lifetime first, most conflicting bytes first; and keeps the smallest;
2. if that is above the lower bound, a branch-and-bound search over placement orders (bounded
   by ``search_nodes``) either finds a smaller plan or proves that none exists.

Why searching orders is exact: take any optimal plan, sort its buffers by offset and place them
first-fit in that order. Each buffer lands at or below its offset in the plan (everything placed
before it ends at or below that offset), so the result is optimal too. Repeating this reaches a
plan that first-fit reproduces in offset order, so the search only follows orders in which the
first-fit offsets never decrease (ties by buffer index). ``optimal`` says whether the plan is
proven optimal (it reaches the lower bound, or the search finished).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ALIGN = 8
SEARCH_NODES = 5_000
STRATEGIES = ("best", "greedy")


@dataclass
class Buffer:
    name: str
    size: int
    first: int
    last: int
    offset: int = -1

    def overlaps(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


class ArenaPlanner:
    def __init__(self, align: int = ALIGN, search_nodes: int = SEARCH_NODES) -> None:
        self.align = align
        self.search_nodes = search_nodes
        self.buffers: dict[str, Buffer] = {}
        self.strategy = ""  # which order produced the plan
        self.optimal: bool | None = None  # proven optimal (None before plan())

    def add(self, name: str, size: int, first: int, last: int) -> None:
        if first > last:
            raise ValueError(f"buffer {name}: first use {first} after last use {last}")
        if size < 0:
            raise ValueError(f"buffer {name}: negative size {size}")
        self.buffers[name] = Buffer(name, size, first, last)

    def plan(self, strategy: str = "best") -> dict[str, int]:
        """Place every buffer; return name -> offset. ``strategy``: "best" or "greedy"."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r} is not one of {STRATEGIES}")
        bufs = list(self.buffers.values())
        orders = {"greedy": _ORDERS["greedy"]} if strategy == "greedy" else _ORDERS
        best: tuple[int, list[int], str] | None = None
        for name, key in orders.items():
            order = sorted(range(len(bufs)), key=lambda i, k=key: k(bufs, i))
            offsets = _first_fit(bufs, order, self.align)
            height = _height(bufs, offsets, self.align)
            if best is None or height < best[0]:
                best = (height, offsets, name)
        assert best is not None or not bufs
        height, offsets, name = best if best else (0, [], "greedy")
        bound = self.lower_bound()
        if strategy == "best" and height > bound:
            for oname, key in (("first-use", _ORDERS["first-use"]), ("greedy", _ORDERS["greedy"])):
                order = sorted(range(len(bufs)), key=lambda i, k=key: k(bufs, i))
                two = _two_sided(bufs, order, self.align, bound)
                if _height(bufs, two, self.align) < height:
                    height, offsets, name = _height(bufs, two, self.align), two, f"{oname}+top"
        self.optimal = height <= bound
        if strategy == "best" and not self.optimal:
            found, complete = _search(bufs, self.align, height, bound, self.search_nodes)
            if found is not None:
                offsets, name = found, "search"
            self.optimal = complete
        for b, off in zip(bufs, offsets, strict=True):
            b.offset = off
        self.strategy = name
        return {b.name: b.offset for b in bufs}

    @property
    def total(self) -> int:
        return _up(max((b.offset + b.size for b in self.buffers.values()), default=0),
                   self.align)

    def lower_bound(self) -> int:
        """The most bytes alive at any one step, each size rounded up to the alignment.

        No plan is smaller: buffers alive together are disjoint and start aligned, so each
        one's rounded-up extent is disjoint from the others' too."""
        sizes = [(b.first, b.last, _up(b.size, self.align)) for b in self.buffers.values()]
        steps = {f for f, _, _ in sizes}  # the live set only grows at a first use
        return max((sum(s for f, la, s in sizes if f <= t <= la) for t in steps), default=0)

    def copy(self) -> ArenaPlanner:
        """A planner with the same buffers, not yet planned."""
        other = ArenaPlanner(self.align, self.search_nodes)
        for b in self.buffers.values():
            other.add(b.name, b.size, b.first, b.last)
        return other


def _up(x: int, a: int) -> int:
    return -(-x // a) * a


def _conflict(bufs: list[Buffer], i: int) -> int:
    return sum(b.size for b in bufs if b.overlaps(bufs[i]))


_ORDERS: dict[str, Callable[[list[Buffer], int], tuple]] = {
    "greedy": lambda bs, i: (-bs[i].size, bs[i].first, bs[i].name),
    "first-use": lambda bs, i: (bs[i].first, -bs[i].size, bs[i].name),
    "longest": lambda bs, i: (bs[i].first - bs[i].last, -bs[i].size, bs[i].name),
    "area": lambda bs, i: (-bs[i].size * (bs[i].last - bs[i].first + 1), bs[i].name),
    "conflict": lambda bs, i: (-_conflict(bs, i), -bs[i].size, bs[i].name),
}


def _fit(bufs: list[Buffer], offsets: list[int], placed: list[int], i: int, align: int) -> int:
    """The lowest aligned offset where buffer i is free of every placed buffer alive with it."""
    b = bufs[i]
    live = sorted((offsets[j], offsets[j] + bufs[j].size) for j in placed
                  if bufs[j].overlaps(b))
    offset = 0
    for start, end in live:
        if offset + b.size <= start:
            break
        offset = max(offset, _up(end, align))
    return offset


def _first_fit(bufs: list[Buffer], order: list[int], align: int) -> list[int]:
    offsets = [-1] * len(bufs)
    placed: list[int] = []
    for i in order:
        offsets[i] = _fit(bufs, offsets, placed, i, align)
        placed.append(i)
    return offsets


def _top_fit(bufs: list[Buffer], offsets: list[int], placed: list[int], i: int, align: int,
             top: int) -> int:
    """The highest aligned offset at which buffer i ends at or below ``top`` and is free of
    every placed buffer alive with it; -1 if there is none."""
    b = bufs[i]
    live = [(offsets[j], offsets[j] + bufs[j].size) for j in placed if bufs[j].overlaps(b)]
    for o in sorted({(top - b.size) // align * align}
                    | {(s - b.size) // align * align for s, _ in live}, reverse=True):
        if o >= 0 and all(o + b.size <= s or e <= o for s, e in live):
            return o
    return -1


def _two_sided(bufs: list[Buffer], order: list[int], align: int, top: int) -> list[int]:
    """Place each buffer flush at the bottom or flush under ``top``, whichever moves it less
    from its edge (ping-pong: exact on a plain chain); first-fit when neither fits."""
    offsets = [-1] * len(bufs)
    placed: list[int] = []
    for i in order:
        low = _fit(bufs, offsets, placed, i, align)
        high = _top_fit(bufs, offsets, placed, i, align, top)
        if low + bufs[i].size > top and high < 0:
            offsets[i] = low
        elif high < 0 or (low + bufs[i].size <= top and low <= top - bufs[i].size - high):
            offsets[i] = low
        else:
            offsets[i] = high
        placed.append(i)
    return offsets


def _height(bufs: list[Buffer], offsets: list[int], align: int) -> int:
    return _up(max((o + b.size for o, b in zip(offsets, bufs, strict=True)), default=0), align)


def _search(bufs: list[Buffer], align: int, best: int, bound: int,
            budget: int) -> tuple[list[int] | None, bool]:
    """Branch and bound over first-fit orders with non-decreasing offsets.

    Returns (offsets of a plan smaller than ``best`` or None, whether the search finished)."""
    n = len(bufs)
    offsets = [-1] * n
    placed: list[int] = []
    found: list[int] | None = None
    nodes = 0

    def dfs(height: int, last: tuple[int, int]) -> bool:  # False: out of budget
        nonlocal best, found, nodes
        if len(placed) == n:
            if height < best:
                best, found = height, list(offsets)
            return True
        nodes += 1
        if nodes > budget:
            return False
        rest = [i for i in range(n) if offsets[i] < 0]
        fits = {i: _fit(bufs, offsets, placed, i, align) for i in rest}
        # each remaining buffer ends at least where it would fit now (fits only move up)
        need = max([height, bound] + [_up(fits[i] + bufs[i].size, align) for i in rest])
        if need >= best:
            return True
        for i in sorted(rest, key=lambda j: (fits[j], -bufs[j].size, j)):
            if (fits[i], i) < last:
                continue
            offsets[i] = fits[i]
            placed.append(i)
            ok = dfs(max(height, _up(fits[i] + bufs[i].size, align)), (fits[i], i))
            placed.pop()
            offsets[i] = -1
            if not ok:
                return False
            if best <= bound:
                return True
        return True

    complete = dfs(0, (-1, -1))
    return found, complete
