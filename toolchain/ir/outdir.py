"""The one resolver of `stq convert` output paths.

An OUTDIR holds ``model.stqa`` (the artifact), ``c/`` (the generated C) and ``convert.json``
(the summary, with the options the C was generated with: kernels, symbol prefix). Every command
that takes a converted model accepts the OUTDIR, the artifact file or the C folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import StqError

ARTIFACT_NAME = "model.stqa"
C_DIR = "c"
SUMMARY = "convert.json"


@dataclass(frozen=True)
class OutDir:
    root: Path

    @property
    def artifact(self) -> Path:
        return self.root / ARTIFACT_NAME

    @property
    def c_dir(self) -> Path:
        return self.root / C_DIR

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    def c_options(self) -> dict:
        """How the C in c/ was generated: {"kernels": ..., "prefix": ...} (defaults when the
        summary predates them)."""
        opts = {"kernels": "optimized", "prefix": "stq_"}
        if self.summary.is_file():
            try:
                s = json.loads(self.summary.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise StqError(f"{self.summary} is not readable JSON ({exc})") from None
            opts.update({k: s[k] for k in ("kernels", "prefix") if k in s})
        return opts


def resolve(path: str | Path, need_c: bool = False) -> OutDir:
    """OUTDIR, OUTDIR/model.stqa or OUTDIR/c -> the OutDir; a clear error when it is none."""
    p = Path(path)
    if not p.exists():
        raise StqError(f"{p} does not exist (expected the OUTDIR of `stq convert`, or "
                       f"OUTDIR/{ARTIFACT_NAME})")
    if p.is_file():
        root = p.parent
        if p.name != ARTIFACT_NAME and p.suffix != ".stqa":
            raise StqError(f"{p} is not an stq artifact (expected OUTDIR/{ARTIFACT_NAME})")
    elif p.name == C_DIR and (p.parent / ARTIFACT_NAME).is_file():
        root = p.parent
    else:
        root = p
    out = OutDir(root)
    if p.is_dir() and not out.artifact.is_file() and not (need_c and p.name == C_DIR):
        raise StqError(f"{p} has no {ARTIFACT_NAME} (expected the OUTDIR of `stq convert`)")
    if need_c and not out.c_dir.is_dir():
        raise StqError(f"{root} has no generated C sources ({C_DIR}/): run `stq convert` first")
    return out
