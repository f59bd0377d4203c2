"""The integer artifact: one versioned file (a zip) holding the whole integer model.

Layout: ``manifest.json`` (format, version, semantics, graph, tensors, quantization, options,
content hash) and one ``.npy`` per array. The content hash is the SHA-256 of the canonical
manifest (without the hash itself) followed by every array's name, dtype, shape and bytes, so
two conversions of the same model give the same hash. Everything downstream reads only this.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from toolchain.errors import StqError
from toolchain.fsutil import atomic_path
from toolchain.ir.graph import Graph, Node, Tensor

FORMAT = "stq-artifact"
VERSION = 1
SEMANTICS = "stq-int-1"  # docs/semantics.md
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def _manifest(g: Graph) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "semantics": SEMANTICS,
        "name": g.name,
        "input": {"tensor": g.input, **g.input_format},
        "output": {"tensor": g.output, **g.output_info},
        "options": g.options,
        "tensors": [t.to_json() for t in g.tensors.values()],
        "nodes": [
            {"name": n.name, "op": n.op, "inputs": n.inputs, "output": n.output,
             "attrs": n.attrs,
             "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)}
                        for k, v in sorted(n.arrays.items())}}
            for n in g.nodes
        ],
    }


def _array_items(g: Graph) -> list[tuple[str, np.ndarray]]:
    return [(f"arrays/{i:03d}_{k}.npy", np.ascontiguousarray(v))
            for i, n in enumerate(g.nodes) for k, v in sorted(n.arrays.items())]


def content_hash(g: Graph) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(_manifest(g), sort_keys=True, separators=(",", ":")).encode())
    for name, arr in _array_items(g):
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save(g: Graph, path: str | Path) -> str:
    """Write the artifact atomically; return its content hash."""
    manifest = _manifest(g)
    digest = content_hash(g)
    manifest["hash"] = digest
    with atomic_path(Path(path)) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            _write(z, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
            for name, arr in _array_items(g):
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                _write(z, name, buf.getvalue())
    return digest


def _write(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, _ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def load(path: str | Path) -> Graph:
    """Read and verify an artifact (format, version, hash, node validity)."""
    p = Path(path)
    if not p.is_file():
        raise StqError(f"artifact {p} does not exist")
    try:
        with zipfile.ZipFile(p) as z:
            manifest = json.loads(z.read("manifest.json"))
            arrays = {n: np.load(io.BytesIO(z.read(n)), allow_pickle=False)
                      for n in z.namelist() if n.endswith(".npy")}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, ValueError, OSError) as exc:
        raise StqError(f"artifact {p} is not a readable stq artifact ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise StqError(f"artifact {p}: field 'format' is {manifest.get('format')!r}, expected "
                       f"{FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise StqError(f"artifact {p}: version {manifest.get('version')!r} is not supported "
                       f"(this stq reads version {VERSION}); convert the model again")
    try:
        tensors = {d["name"]: Tensor.from_json(d) for d in manifest["tensors"]}
        nodes = []
        for i, nd in enumerate(manifest["nodes"]):
            arrs = {k: arrays[f"arrays/{i:03d}_{k}.npy"] for k in nd["arrays"]}
            nodes.append(Node(nd["name"], nd["op"], list(nd["inputs"]), nd["output"],
                              nd["attrs"], arrs))
        inp = dict(manifest["input"])
        out = dict(manifest["output"])
        g = Graph(manifest["name"], tensors, nodes, inp.pop("tensor"), out.pop("tensor"), inp,
                  out, manifest.get("options", {"packing": "2bit"}))
    except KeyError as exc:
        raise StqError(f"artifact {p}: missing field or array {exc}") from None
    digest = content_hash(g)
    if manifest.get("hash") != digest:
        raise StqError(f"artifact {p}: content hash mismatch (stored {manifest.get('hash')}, "
                       f"computed {digest}); the file is corrupt or was edited")
    return g
