"""Static arena planning behind a tiny interface: add buffers with lifetimes, get offsets.

Buffers whose lifetimes (inclusive [first, last] step ranges) overlap never share bytes.
This planner places buffers largest first at the lowest offset that fits (the TFLite Micro
greedy approach).
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 8


@dataclass
class Buffer:
    name: str
    size: int
    first: int
    last: int
    offset: int = -1


class ArenaPlanner:
    def __init__(self, align: int = ALIGN) -> None:
        self.align = align
        self.buffers: dict[str, Buffer] = {}

    def add(self, name: str, size: int, first: int, last: int) -> None:
        if first > last:
            raise ValueError(f"buffer {name}: first use {first} after last use {last}")
        self.buffers[name] = Buffer(name, size, first, last)

    def plan(self) -> dict[str, int]:
        placed: list[Buffer] = []
        order = sorted(self.buffers.values(), key=lambda b: (-b.size, b.first, b.name))
        for buf in order:
            live = sorted((p for p in placed if p.first <= buf.last and buf.first <= p.last),
                          key=lambda p: p.offset)
            offset = 0
            for p in live:
                if offset + buf.size <= p.offset:
                    break
                offset = max(offset, _up(p.offset + p.size, self.align))
            buf.offset = offset
            placed.append(buf)
        return {b.name: b.offset for b in self.buffers.values()}

    @property
    def total(self) -> int:
        return _up(max((b.offset + b.size for b in self.buffers.values()), default=0),
                   self.align)

    def lower_bound(self) -> int:
        """The largest sum of sizes alive at any one step."""
        steps = {s for b in self.buffers.values() for s in (b.first, b.last)}
        return max((sum(b.size for b in self.buffers.values() if b.first <= s <= b.last)
                    for s in steps), default=0)


def _up(x: int, a: int) -> int:
    return -(-x // a) * a
