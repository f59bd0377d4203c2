"""`stq attack` on a farm: black-box attacks sharded by image, outputs sharded by input.

``attack_image`` runs one image's whole black-box attack against one oracle, seeded from
(seed, image index), so the adversarial bytes depend only on the image, never on which device
ran it or what else ran at the same time. ART's attacks draw from NumPy's (and Python's) global
generators, so several device threads take turns on the host (``_TURN``): a thread holds the
turn while the attack computes and gives it up, with its generator state saved, while its
device answers a query. ``FarmOracle`` is the farm as one integer oracle: batches of inputs
are split over the devices (scoring), and ``attack_chunk`` shards a chunk's images.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from toolchain.farm import scheduler
from toolchain.farm.pool import Device, FarmSpec
from toolchain.farm.report import farm_summary
from toolchain.ir.graph import Graph
from toolchain.robustness import attacks as A
from toolchain.robustness import oracles

_TURN = threading.Lock()


def image_seed(seed: int, index: int) -> int:
    """The seed of image ``index``'s attack: the same on any device, in any order."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@contextlib.contextmanager
def _host_turn() -> Iterator[None]:
    with _TURN:
        yield


class _TakingTurns:
    """An oracle call that gives up the host turn (saving the generators) while it waits."""

    def __init__(self, oracle: oracles.Oracle) -> None:
        self.oracle, self.name = oracle, oracle.name
        self.classes, self.input_shape = oracle.classes, oracle.input_shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        state, pystate = np.random.get_state(), random.getstate()
        _TURN.release()
        try:
            return self.oracle(x)
        finally:
            _TURN.acquire()
            np.random.set_state(state)
            random.setstate(pystate)


def attack_image(name: str, oracle: oracles.Oracle, x: np.ndarray, y: int, cfg: A.AttackConfig,
                 eps: float | None, index: int, budget: int | None = None
                 ) -> tuple[np.ndarray, int, bool]:
    """Image ``index``'s black-box attack ``name`` on ``oracle``: (adversarial image, queries,
    whether the budget stopped it; then the image is returned unchanged)."""
    counted = oracles.CountedOracle(_TakingTurns(oracle), budget)
    clf = oracles.art_classifier(counted, cfg.clip)
    with _host_turn():
        try:
            adv = A.run(name, clf, x[None], np.array([y], dtype=np.int64),
                              replace(cfg, seed=image_seed(cfg.seed, index)), eps)[0]
            return adv, counted.queries, False
        except oracles.BudgetExhausted:
            return x.astype(np.float32), counted.queries, True


@dataclass(frozen=True)
class ImageJob:
    """One image's attack (picklable for Ray)."""

    index: int
    name: str
    x: np.ndarray
    y: int
    cfg: A.AttackConfig
    eps: float | None
    budget: int | None
    g: Graph


def run_image(dev: Device, job: ImageJob) -> scheduler.Outcome:
    oracle = oracles.DeviceOracle(job.g, dev.link, dev.name)
    adv, queries, exhausted = attack_image(job.name, oracle, job.x, job.y, job.cfg, job.eps,
                                           job.index, job.budget)
    return scheduler.Outcome((adv, queries, exhausted), queries)


@dataclass(frozen=True)
class InferJob:
    start: int
    xq: np.ndarray
    g: Graph


def run_infer(dev: Device, job: InferJob) -> scheduler.Outcome:
    return scheduler.Outcome(oracles.DeviceOracle(job.g, dev.link, dev.name).run_int(job.xq),
                             len(job.xq))


def check_model(dev: Device, g: Graph) -> None:
    oracles.DeviceOracle(g, dev.link, dev.name)  # refuses a device running another model


class FarmOracle(oracles.IntegerOracle):
    """Every device of a farm behind one integer oracle; a context manager."""

    def __init__(self, g: Graph, farm: FarmSpec) -> None:
        super().__init__(g)
        self.farm = farm
        self.pool: Any = None
        self.wall_s = 0.0  # time spent in map calls
        where = f"Ray cluster {farm.ray}" if farm.ray else f"{len(farm.devices())} devices"
        self.name = f"farm of {where} ({farm.board or 'ports'})"

    def __enter__(self) -> FarmOracle:
        self.pool = scheduler.open_farm(self.farm, functools.partial(check_model, g=self.g))
        self.pool.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.__exit__(*exc)

    def _map(self, jobs: list[Any], work: Any, on_result: Any) -> None:
        t0 = time.monotonic()
        try:
            self.pool.map(jobs, work, on_result)
        finally:
            self.wall_s += time.monotonic() - t0

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        size = max(1, self.farm.block)
        jobs = [InferJob(a, xq[a:a + size], self.g) for a in range(0, len(xq), size)]
        out: dict[int, np.ndarray] = {}
        self._map(jobs, run_infer, lambda job, y: out.__setitem__(job.start, y))
        return np.concatenate([out[j.start] for j in jobs])

    def attack_chunk(self, name: str, x: np.ndarray, y: np.ndarray, cfg: A.AttackConfig,
                     eps: float | None, start: int, budget: int | None
                     ) -> tuple[np.ndarray, int, bool]:
        """Images [start, start + len(x)) attacked one per work item: (adversarial images,
        queries, budget exhausted). A budget is applied in image order, as one device would
        spend it: the image that would overrun it and all later ones are left unchanged."""
        jobs = [ImageJob(start + k, name, x[k], int(y[k]), cfg, eps, budget, self.g)
                for k in range(len(x))]
        res: dict[int, tuple[np.ndarray, int, bool]] = {}
        self._map(jobs, run_image, lambda job, r: res.__setitem__(job.index, r))
        adv, spent, stopped = x.astype(np.float32).copy(), 0, False
        for k, job in enumerate(jobs):
            a, q, exhausted = res[job.index]
            if budget is not None and (exhausted or spent + q > budget):
                spent, stopped = spent + min(q, budget - spent), True
                break
            adv[k], spent = a, spent + q
        return adv, spent, stopped

    def report(self) -> dict:
        """Per-device rows (``farm``) and the summed link counters."""
        return farm_summary(self.pool.stats, self.wall_s)
