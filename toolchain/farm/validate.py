"""`stq validate` on a farm: the inputs from ``start`` on, in blocks of ``FarmSpec.block``
consecutive inputs (a block streams its next input while the device computes), each block on
whichever device is free; lines reach ``OUT/results.jsonl`` in index order as soon as every
earlier block is in, so the file (and a resumed run) is exactly a one-device run's."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolchain.farm import scheduler
from toolchain.farm.pool import Device
from toolchain.farm.report import farm_summary
from toolchain.validate import run as V


@dataclass(frozen=True)
class Block:
    """Inputs [start, start + len(blobs)): everything a device needs (picklable for Ray)."""

    start: int
    blobs: tuple[bytes, ...]
    expected: np.ndarray
    labels: tuple[int, ...] | None


def run_block(dev: Device, block: Block) -> scheduler.Outcome:
    """One block on one device: its results.jsonl lines and ticks."""
    info, blobs = dev.link.info_, block.blobs
    lines, ticks = [], []
    for k, reply in enumerate(dev.link.infer_all(blobs)):
        label = None if block.labels is None else block.labels[k]
        lines.append(V.result_line(block.start + k, reply, info, block.expected[k], label))
        ticks.append(reply.ticks)
    return scheduler.Outcome((lines, ticks, info), len(blobs))


def check(dev: Device, model_hash: str, in_bytes: int, out_bytes: int) -> None:
    V.check_device(dev.link, model_hash, in_bytes, out_bytes)


def make_blocks(inp: V.Inputs, expected: np.ndarray, start: int, size: int) -> list[Block]:
    n, out = len(inp.xq), []
    for a in range(start, n, max(1, size)):
        b = min(a + size, n)
        labels = None if inp.labels is None else tuple(int(v) for v in inp.labels[a:b])
        out.append(Block(a, tuple(np.ascontiguousarray(x).tobytes() for x in inp.xq[a:b]),
                         expected[a:b], labels))
    return out


def run_farm(cfg: V.ValidateConfig, inp: V.Inputs, expected: np.ndarray, start: int,
             model_hash: str) -> dict:
    """Validate inputs [start, N) on the farm ``cfg.farm``; the session part of the summary."""
    from tqdm import tqdm

    farm = cfg.farm
    n = len(inp.xq)
    items = make_blocks(inp, expected, start, farm.block)
    ticks: list[int] = []
    infos: list[Any] = []
    t0 = time.monotonic()
    bar = tqdm(total=n, initial=start, desc="validate", unit="inf",
               disable=not (cfg.progress and farm.progress), leave=False)
    chk = functools.partial(check, model_hash=model_hash, in_bytes=inp.xq[0].nbytes,
                            out_bytes=expected[0].nbytes)
    with open(cfg.out_dir / V.RESULTS, "a", encoding="ascii") as f, \
            scheduler.open_farm(farm, chk) as pool:

        def emit(_: Block, value: tuple) -> None:
            lines, tk, info = value
            f.write("".join(lines))
            f.flush()
            ticks.extend(tk)
            infos.append(info)
            bar.update(len(lines))

        ordered: scheduler.Ordered[tuple] = scheduler.Ordered([b.start for b in items], emit)
        try:
            pool.map(items, run_block, lambda blk, value: ordered.add(blk.start, value))
        finally:
            bar.close()
            seconds = time.monotonic() - t0
            stats = pool.stats
    info = infos[0] if infos else None
    session = {"inferences": n - start, "seconds": seconds,
               "inferences_per_s": (n - start) / max(seconds, 1e-9),
               "mean_ticks": float(np.mean(ticks)) if ticks else None,
               "clock_hz": getattr(info, "clock_hz", None)}
    session.update(farm_summary(stats, seconds))
    if info is not None:
        session.update(board=info.board, build_id=info.build_id, counter=info.counter)
    return session
