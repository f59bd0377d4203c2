"""Reading QKeras ``.h5`` files written by newer tf-keras (2.16-2.21) with the pinned Keras 2.15.

Their model config carries keys Keras 2.15 refuses (``InputLayer``: ``optional``, and
``batch_shape`` for ``batch_input_shape``; ``DTypePolicy`` objects for ``dtype``). The config is
translated here and the weights are read from the same file; everything else of a QKeras model
reads unchanged (../shared/FACTS.md). A file that still cannot be read is named with the Keras
version that wrote it and the versions stq reads.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

READS = "QKeras models saved as .h5 by Keras / tf-keras 2.13-2.21, or as .keras / SavedModel " \
        "by Keras 2.15"
NATIVE = (2, 15)  # the pinned Keras; files it wrote need no translation


def writer_version(path: Path) -> str | None:
    """The Keras version recorded in an .h5 (attrs ``keras_version``) or .keras (metadata.json)."""
    try:
        if path.suffix == ".keras" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return str(json.loads(z.read("metadata.json")).get("keras_version")) or None
        if path.is_file():
            import h5py

            with h5py.File(path, "r") as f:
                v = f.attrs.get("keras_version")
                return v.decode() if isinstance(v, bytes) else (str(v) if v is not None else None)
    except Exception:  # noqa: BLE001 - not a readable h5 / keras file: no version to tell
        return None
    return None


def _major_minor(version: str) -> tuple[int, int] | None:
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def needs_translation(version: str | None) -> bool:
    mm = _major_minor(version) if version else None
    return mm is not None and mm != NATIVE


def _translate_layer(layer: dict[str, Any]) -> None:
    cfg = layer.get("config")
    if not isinstance(cfg, dict):
        return
    if layer.get("class_name") == "InputLayer":
        cfg.pop("optional", None)
        if "batch_shape" in cfg:
            cfg.setdefault("batch_input_shape", cfg.pop("batch_shape"))
    dtype = cfg.get("dtype")
    if isinstance(dtype, dict) and dtype.get("class_name") in ("DTypePolicy", "Policy"):
        cfg["dtype"] = dtype.get("config", {}).get("name", "float32")
    for nested in cfg.get("layers", []) if isinstance(cfg.get("layers"), list) else []:
        _translate_layer(nested)
    if isinstance(cfg.get("layer"), dict):  # wrappers (e.g. TimeDistributed)
        _translate_layer(cfg["layer"])


def translate_config(config: dict[str, Any]) -> dict[str, Any]:
    """A newer tf-keras model config -> one Keras 2.15 deserializes (in place; returned)."""
    _translate_layer(config)
    return config


def load_translated_h5(path: Path, custom_objects: dict[str, Any]) -> Any:
    """Build the model from the translated config of ``path`` and load its weights."""
    import h5py
    import tensorflow as tf

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
    if raw is None:
        raise ValueError("the file holds weights only (no model_config)")
    config = translate_config(json.loads(raw.decode() if isinstance(raw, bytes) else raw))
    model = tf.keras.models.model_from_json(json.dumps(config), custom_objects=custom_objects)
    model.load_weights(str(path))
    return model
