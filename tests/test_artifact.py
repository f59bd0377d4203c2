"""The artifact is one versioned file with a content hash; it round-trips and refuses tampering."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from probes import randomized

from toolchain.errors import StqError
from toolchain.frontend import keras as frontend
from toolchain.ir import artifact
from toolchain.reference import model as reference


@pytest.fixture(scope="module")
def graph():
    return frontend.convert_model(randomized("residual"), name="residual")


def _rewrite(src: Path, dst: Path, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, edit(name, zin.read(name)))


def _edit_array(src: Path, dst: Path, suffix: str, change) -> None:
    """Copy the artifact, applying ``change`` to the array stored under a name ending in
    ``suffix``."""

    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith(suffix):
            return data
        buf = io.BytesIO()
        np.save(buf, change(np.load(io.BytesIO(data))))
        return buf.getvalue()

    _rewrite(src, dst, edit)


def test_round_trip_keeps_hash_and_results(graph, tmp_path: Path) -> None:
    digest = artifact.save(graph, tmp_path / "a.stqa")
    assert len(digest) == 64
    g2 = artifact.load(tmp_path / "a.stqa")
    assert artifact.content_hash(g2) == digest
    x = np.random.default_rng(0).integers(0, 256, (8, 8, 1))
    for name, v in reference.run(graph, x).items():
        np.testing.assert_array_equal(reference.run(g2, x)[name], v)
    manifest = json.loads(zipfile.ZipFile(tmp_path / "a.stqa").read("manifest.json"))
    assert manifest["format"] == "stq-artifact" and manifest["version"] == 1
    assert manifest["semantics"] == "stq-int-1"
    assert manifest["input"]["dtype"] == "uint8" and manifest["input"]["step"] == 2.0**-8
    assert {"mult", "shift", "offset", "weights"} <= set(manifest["nodes"][0]["arrays"])


def test_hash_is_deterministic_and_content_sensitive(graph, tmp_path: Path) -> None:
    h1 = artifact.save(graph, tmp_path / "a.stqa")
    h2 = artifact.save(graph, tmp_path / "b.stqa")
    assert h1 == h2
    assert (tmp_path / "a.stqa").read_bytes() == (tmp_path / "b.stqa").read_bytes()
    graph.nodes[0].arrays["offset"] = graph.nodes[0].arrays["offset"] + 1
    try:
        assert artifact.content_hash(graph) != h1
    finally:
        graph.nodes[0].arrays["offset"] = graph.nodes[0].arrays["offset"] - 1


def test_edited_array_is_detected(graph, tmp_path: Path) -> None:
    artifact.save(graph, tmp_path / "a.stqa")
    _edit_array(tmp_path / "a.stqa", tmp_path / "b.stqa", "000_offset.npy", lambda a: a + 1)
    with pytest.raises(StqError, match="content hash mismatch"):
        artifact.load(tmp_path / "b.stqa")


def test_non_ternary_weights_in_artifact_are_refused(graph, tmp_path: Path) -> None:
    artifact.save(graph, tmp_path / "a.stqa")

    def two(a: np.ndarray) -> np.ndarray:
        a.flat[0] = 2
        return a

    _edit_array(tmp_path / "a.stqa", tmp_path / "b.stqa", "000_weights.npy", two)
    with pytest.raises(StqError, match="layer 'stem': ternary weights hold values outside"):
        artifact.load(tmp_path / "b.stqa")


def test_wrong_version_and_garbage(graph, tmp_path: Path) -> None:
    artifact.save(graph, tmp_path / "a.stqa")

    def edit(name: str, data: bytes) -> bytes:
        if name == "manifest.json":
            m = json.loads(data)
            m["version"] = 99
            return json.dumps(m).encode()
        return data

    _rewrite(tmp_path / "a.stqa", tmp_path / "v.stqa", edit)
    with pytest.raises(StqError, match="version 99 is not supported"):
        artifact.load(tmp_path / "v.stqa")
    (tmp_path / "junk.stqa").write_bytes(b"not a zip")
    with pytest.raises(StqError, match="not a readable stq artifact"):
        artifact.load(tmp_path / "junk.stqa")
    with pytest.raises(StqError, match="does not exist"):
        artifact.load(tmp_path / "missing.stqa")
