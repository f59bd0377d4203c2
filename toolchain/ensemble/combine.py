"""The ensemble of differently quantized models, combined exactly in integers (host side).

Combination (docs/semantics.md, "Ensemble"): members m = 1..M have integer outputs y_m (int8
or int32) with real scale s_m. With s_max the largest scale, each member gets the integer
weight ``k_m = round_half_even(2**16 * s_m / s_max)`` (1 .. 65536) and the ensemble output is

    out[c] = saturate_int32( sum_m k_m * y_m[c] )      (the sum exact in int64)

an int32 vector with real scale ``s_max / (2**16 * M)``: the average of the members'
dequantized scores (exact when the scale ratios are powers of two, as with QKeras' po2 logits;
otherwise within 2**-17 relative per member). The prediction is the first index of the
largest ``out[c]``. The device computes the same integers (templates/schedule/ensemble.c.j2).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolchain.errors import StqError
from toolchain.ir import artifact
from toolchain.ir.graph import Graph
from toolchain.reference import model as reference

WEIGHT_BITS = 16
MANIFEST = "ensemble.json"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def member_weights(scales: list[float]) -> list[int]:
    s_max = max(scales)
    return [int(np.round(2.0**WEIGHT_BITS * s / s_max)) for s in scales]  # numpy: half-even


def ensemble_hash(hashes: list[str], weights: list[int]) -> str:
    h = hashlib.sha256(b"stq-ensemble-v1\0")
    for d, k in zip(hashes, weights, strict=True):
        h.update(f"{d}:{k}\0".encode())
    return h.hexdigest()


def check_members(graphs: list[Graph]) -> None:
    if not 2 <= len(graphs) <= 8:
        raise StqError(f"an ensemble needs 2 to 8 members, got {len(graphs)}")
    f0, t0 = graphs[0].input_format, graphs[0].tensors[graphs[0].input]
    n0 = graphs[0].tensors[graphs[0].output].size
    for g in graphs[1:]:
        t = g.tensors[g.input]
        if g.input_format != f0 or tuple(t.shape) != tuple(t0.shape):
            raise StqError(f"ensemble member {g.name}: input {t.dtype}{list(t.shape)} step "
                           f"{g.input_format.get('step')} differs from {graphs[0].name}'s "
                           f"{t0.dtype}{list(t0.shape)} step {f0.get('step')}; members must "
                           "take identical integer inputs")
        if g.tensors[g.output].size != n0:
            raise StqError(f"ensemble member {g.name}: {g.tensors[g.output].size} outputs, "
                           f"{graphs[0].name} has {n0}")


@dataclass
class Ensemble:
    graphs: list[Graph]
    names: list[str]

    def __post_init__(self) -> None:
        check_members(self.graphs)
        self.scales = [float(g.tensors[g.output].scale) for g in self.graphs]
        self.weights = member_weights(self.scales)
        self.hashes = [artifact.content_hash(g) for g in self.graphs]
        self.hash = ensemble_hash(self.hashes, self.weights)
        self.scale = max(self.scales) / (2.0**WEIGHT_BITS * len(self.graphs))
        self.classes = int(self.graphs[0].tensors[self.graphs[0].output].size)
        self.input_shape = tuple(int(d) for d in self.graphs[0].tensors[self.graphs[0].input]
                                 .shape)
        self.g = self.graphs[0]  # the input format (quantization) every member shares

    def combine(self, outs: list[np.ndarray]) -> np.ndarray:
        acc = np.zeros_like(np.asarray(outs[0], dtype=np.int64))
        for k, y in zip(self.weights, outs, strict=True):
            acc += np.int64(k) * np.asarray(y, dtype=np.int64)
        return np.clip(acc, INT32_MIN, INT32_MAX).astype(np.int32)

    def predict(self, xq: np.ndarray) -> np.ndarray:
        """Integer ensemble outputs (N, classes) int32 for integer inputs."""
        return self.combine([reference.predict(g, xq) for g in self.graphs])

    def manifest(self, prefixes: list[str]) -> dict:
        return {"kind": "stq-ensemble", "hash": self.hash, "scale": self.scale,
                "weight_bits": WEIGHT_BITS, "classes": self.classes,
                "combination": "out = sat_int32(sum_m k_m * y_m), k_m = rhe(2^16 s_m / s_max)",
                "members": [{"name": n, "hash": h, "scale": s, "weight": k, "prefix": p,
                             "artifact": f"members/{p.rstrip('_')}.stqa"}
                            for n, h, s, k, p in zip(self.names, self.hashes, self.scales,
                                                     self.weights, prefixes, strict=True)]}


def load(outdir: str | Path) -> Ensemble:
    """The ensemble of an `ensemble` OUTDIR (ensemble.json + members/*.stqa)."""
    root = Path(outdir)
    if not (root / MANIFEST).is_file():
        raise StqError(f"{root} is not an ensemble folder (no {MANIFEST})")
    man = json.loads((root / MANIFEST).read_text())
    e = Ensemble([artifact.load(root / m["artifact"]) for m in man["members"]],
                 [m["name"] for m in man["members"]])
    if e.hash != man["hash"]:
        raise StqError(f"{root / MANIFEST}: member artifacts do not match the recorded hash")
    return e


def is_ensemble(outdir: str | Path) -> bool:
    return (Path(outdir) / MANIFEST).is_file()
