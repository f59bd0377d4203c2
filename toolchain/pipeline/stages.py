"""Cached pipeline stages: a stage runs only when the hash of its inputs changed.

Each finished stage writes OUT/.stq-cache/<name>.json (atomically) with the key (SHA-256 of the
stage's inputs: parameters and the content hashes of the files it reads) and its JSON result.
An interrupted run loses only the stage that was running; the next run reuses the others.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolchain import __version__
from toolchain.fsutil import write_text


def file_hash(path: str | Path) -> str:
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


class Stages:
    def __init__(self, out: Path, log: Callable[[str], None] = print,
                 total: int | None = None, progress: bool = False, command: str = "demo") -> None:
        from toolchain.progress import bar, write

        self.cache = Path(out) / ".stq-cache"
        self.command = command  # the word before each stage's count: [demo 3/7]
        self.bar = bar(total, command, progress, unit="stage")
        self.log = (lambda line: write(line, self.bar)) if log is print else log
        self.total = total
        self.count = 0
        self.timings: dict[str, float] = {}
        self.cached: dict[str, bool] = {}

    def run(self, name: str, title: str, inputs: dict[str, Any],
            fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.count += 1
        n = f"{self.count}/{self.total}" if self.total else str(self.count)
        tag = f"[{self.command} {n}]"
        key = hashlib.sha256(json.dumps({"stq": __version__, **inputs}, sort_keys=True,
                                        default=str).encode()).hexdigest()
        path = self.cache / f"{name}.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("key") == key and all(Path(f).exists()
                                               for f in saved["result"].get("files", [])):
                self.timings[name] = 0.0
                self.cached[name] = True
                self.log(f"{tag} {title}: reused (inputs unchanged)")
                self.bar.update(1)
                return saved["result"]
        self.log(f"{tag} {title} ...")
        start = time.perf_counter()
        result = fn()
        self.timings[name] = round(time.perf_counter() - start, 2)
        self.cached[name] = False
        self.cache.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"key": key, "result": result}, indent=1, default=str))
        self.log(f"{tag} {title}: done in {self.timings[name]:.1f} s")
        self.bar.update(1)
        return result
