"""Hand work items to devices: one thread per device, each opening its own device, taking the
next item from a shared queue and returning its result to the caller's thread.

A device that fails (cannot be opened, or raises while working on an item) is retired; the
item it had in flight goes back to the queue for another device. Results reach ``on_result``
in completion order, in the calling thread; ``Ordered`` puts them back in item order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from toolchain.errors import StqError
from toolchain.farm.pool import Device, DeviceSpec, FarmSpec, open_device

T = TypeVar("T")


@dataclass
class DeviceStats:
    """What one device did in a campaign (the farm report's rows)."""

    name: str
    host: str = "local"
    items: int = 0
    queries: int = 0  # inferences (validation inputs, or attack queries)
    busy_s: float = 0.0  # time spent on finished items
    requeued: int = 0  # items given back to the queue when this device failed
    failed: str | None = None
    link: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "host": self.host, "items": self.items,
                "queries": self.queries, "busy_s": round(self.busy_s, 3),
                "queries_per_s": round(self.queries / self.busy_s, 2) if self.busy_s else None,
                "requeued": self.requeued, "failed": self.failed,
                "retries": int(self.link.get("retries", 0)), "link": self.link}


@dataclass
class Outcome:
    """A finished item: its result and how many device queries it took."""

    result: Any
    queries: int


class Ordered(Generic[T]):
    """Collect results keyed by item and pass them on in the order of ``keys``."""

    def __init__(self, keys: Iterable[Any], emit: Callable[[Any, T], None]) -> None:
        self.keys, self.pos, self.emit = list(keys), 0, emit
        self.waiting: dict[Any, T] = {}

    def add(self, key: Any, value: T) -> None:
        self.waiting[key] = value
        while self.pos < len(self.keys) and self.keys[self.pos] in self.waiting:
            k = self.keys[self.pos]
            self.emit(k, self.waiting.pop(k))
            self.pos += 1


Work = Callable[[Device, Any], Outcome]


class LocalFarm:
    """The farm's devices, each opened and served by its own thread until ``close``; ``map``
    runs a batch of items on them (it may be called many times, one batch at a time)."""

    def __init__(self, farm: FarmSpec, specs: Iterable[DeviceSpec] | None = None,
                 check: Callable[[Device], None] | None = None) -> None:
        self.farm, self.check = farm, check
        self.specs = list(specs if specs is not None else farm.devices())
        self.stats = [DeviceStats(s.name) for s in self.specs]
        self.live = [True] * len(self.specs)
        self.todo: queue.Queue[tuple[Any, Work]] = queue.Queue()
        self.done: queue.Queue[tuple[Any, Any] | None] = queue.Queue()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> LocalFarm:
        if any(s.port is None for s in self.specs):
            self.farm.firmware()  # build the firmware once, before the boards start
        self.threads = [threading.Thread(target=self._serve, args=(k,), daemon=True,
                                         name=f"farm-{s.name}") for k, s in enumerate(self.specs)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _serve(self, k: int) -> None:
        st, dev = self.stats[k], None
        try:
            with open_device(self.specs[k], self.farm) as dev:
                if self.check is not None:
                    self.check(dev)
                while not self.stop.is_set():
                    try:
                        item, work = self.todo.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    t0 = time.monotonic()
                    try:
                        out = work(dev, item)
                    except BaseException:
                        self.todo.put((item, work))  # back to the queue for another device
                        st.requeued += 1
                        raise
                    st.items += 1
                    st.queries += out.queries
                    st.busy_s += time.monotonic() - t0
                    st.link = dev.link.stats.as_dict()
                    self.done.put((item, out.result))
                    if self.farm.on_item is not None:
                        self.farm.on_item(dev, item)
        except Exception as exc:  # noqa: BLE001 - any failure retires this device
            st.failed = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        finally:
            if dev is not None:
                st.link = dev.link.stats.as_dict()
            self.live[k] = False
            self.done.put(None)  # wake the collector

    def map(self, items: list[Any], work: Work, on_result: Callable[[Any, Any], None]) -> None:
        """``work(device, item)`` for every item; ``on_result(item, result)`` in this thread.
        Raises StqError when every device has failed with items left."""
        for it in items:
            self.todo.put((it, work))
        left = len(items)
        while left:
            msg = self.done.get()
            if msg is not None:
                on_result(*msg)
                left -= 1
            elif not any(self.live):
                why = "; ".join(f"{s.name}: {s.failed}" for s in self.stats if s.failed)
                raise StqError(f"every device of the farm failed with {left} work items left "
                               f"({why or 'no device could be opened'})")


def open_farm(farm: FarmSpec, check: Callable[[Device], None] | None = None) -> Any:
    """A LocalFarm, or a RayFarm with ``farm.ray`` (same ``map`` and ``stats``)."""
    if farm.ray:
        from toolchain.farm.ray_farm import RayFarm

        return RayFarm(farm, check)
    return LocalFarm(farm, check=check)
