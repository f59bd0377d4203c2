"""The farm on a Ray cluster: one actor per device, each on the node the device is attached to.

A node contributes devices by advertising custom resources when it joins the cluster:

- ``stq-board:NAME`` = N: N QEMU boards (of ``--board``) started on that node;
- ``stq-port:URL`` = 1: a flashed board on that node's serial port URL (``/dev/ttyACM0``).

e.g. ``ray start --address HEAD:6379 --resources '{"stq-port:/dev/ttyACM0": 1}'``. Each actor
claims one unit of its resource, opens its device there (the driver ships the firmware ELF) and
runs work items the driver hands it; Ray carries the calls, the data and the failures (an actor
whose device failed is dropped and its item goes to another). Needs ``pip install stq[farm]``.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolchain.errors import StqError
from toolchain.farm.pool import Device, DeviceSpec, FarmSpec, open_device
from toolchain.farm.scheduler import DeviceStats, Work

QEMU_RESOURCE = "stq-board:"
PORT_RESOURCE = "stq-port:"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise StqError("--ray needs Ray, an optional extra: pip install 'stq[farm]' "
                       "(or pip install 'ray>=2.9'); without it, shard over local devices "
                       "with --qemu N / --port / --devices") from None
    return ray


def cluster_devices(nodes: list[dict]) -> list[tuple[str, DeviceSpec]]:
    """(resource, device) for every device the alive nodes advertise (``ray.nodes()``)."""
    out = []
    for node in nodes:
        if not node.get("Alive"):
            continue
        ip = node.get("NodeManagerAddress", "?")
        for key, amount in sorted(node.get("Resources", {}).items()):
            if key.startswith(QEMU_RESOURCE):
                out += [(key, DeviceSpec(f"{key[len(QEMU_RESOURCE):]}#{i}@{ip}"))
                        for i in range(int(amount))]
            elif key.startswith(PORT_RESOURCE):
                url = key[len(PORT_RESOURCE):]
                out.append((key, DeviceSpec(f"{url}@{ip}", url)))
    return out


class DeviceActor:
    """One device, opened on the actor's node; ``work`` runs one item on it."""

    def __init__(self, spec: DeviceSpec, farm: FarmSpec, elf: bytes | None,
                 check: Callable[[Device], None] | None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="stq-ray-")
        path = None
        if elf is not None:
            path = Path(self.tmp.name) / "fw.elf"
            path.write_bytes(elf)
        farm = replace(farm, elf=path, work_dir=Path(self.tmp.name), on_item=None, ray=None)
        self.stack = contextlib.ExitStack()
        self.dev = self.stack.enter_context(open_device(spec, farm))
        if check is not None:
            check(self.dev)

    def host(self) -> str:
        return socket.gethostname()

    def work(self, fn: Work, item: Any) -> tuple[Any, int, dict]:
        out = fn(self.dev, item)
        return out.result, out.queries, self.dev.link.stats.as_dict()

    def close(self) -> None:
        self.stack.close()
        self.tmp.cleanup()


class RayFarm:
    """The cluster's devices as a farm: the same ``map`` and ``stats`` as LocalFarm."""

    def __init__(self, farm: FarmSpec, check: Callable[[Device], None] | None = None) -> None:
        self.farm, self.check = farm, check
        self.ray = import_ray()
        self.actors: list[Any] = []
        self.stats: list[DeviceStats] = []
        self.live: list[bool] = []

    def __enter__(self) -> RayFarm:
        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.farm.ray, log_to_driver=False)
        found = cluster_devices(ray.nodes())
        if not found:
            raise StqError(f"the Ray cluster at {self.farm.ray} advertises no devices: start "
                           f"its nodes with resources {QEMU_RESOURCE}NAME=N (QEMU boards) or "
                           f"{PORT_RESOURCE}URL=1 (a flashed board)")
        elf = None
        if any(spec.port is None for _, spec in found):
            fw = self.farm.firmware()
            elf = None if fw is None else Path(fw).read_bytes()
        actor = ray.remote(DeviceActor)
        for key, spec in found:
            self.actors.append(actor.options(resources={key: 1}, num_cpus=0).remote(
                spec, replace(self.farm, on_item=None), elf, self.check))
            self.stats.append(DeviceStats(spec.name, host=spec.name.rsplit("@", 1)[-1]))
            self.live.append(True)
        return self

    def __exit__(self, *exc: object) -> None:
        for k, a in enumerate(self.actors):
            if self.live[k]:
                with contextlib.suppress(Exception):
                    self.ray.get(a.close.remote(), timeout=30)
            self.ray.kill(a)

    def _retire(self, k: int, exc: BaseException) -> None:
        self.live[k] = False
        text = str(getattr(exc, "cause", None) or exc).strip().splitlines()
        self.stats[k].failed = (text[-1] if text else type(exc).__name__)[:300]
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[k])

    def map(self, items: list[Any], work: Work, on_result: Callable[[Any, Any], None]) -> None:
        ray = self.ray
        todo, pending = deque(items), {}
        idle = [k for k in range(len(self.actors)) if self.live[k]]
        while todo or pending:
            while todo and idle:
                k, it = idle.pop(0), todo.popleft()
                pending[self.actors[k].work.remote(work, it)] = (k, it, time.monotonic())
            if not pending:
                why = "; ".join(f"{s.name}: {s.failed}" for s in self.stats if s.failed)
                raise StqError(f"every device of the Ray farm failed with {len(todo)} work "
                               f"items left ({why})")
            ready, _ = ray.wait(list(pending), num_returns=1)
            k, it, t0 = pending.pop(ready[0])
            try:
                result, queries, link = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - the device (or its actor) failed
                self._retire(k, exc)
                self.stats[k].requeued += 1
                todo.appendleft(it)
                continue
            st = self.stats[k]
            st.items, st.queries, st.link = st.items + 1, st.queries + queries, link
            st.busy_s += time.monotonic() - t0
            idle.append(k)
            on_result(it, result)
