"""QKeras frontend: load a Keras model and translate it, layer by layer, into the integer IR.

Each layer goes to the handler registered for its class (toolchain/frontend/registry.py); a
layer with no handler is refused with its name, its type and the list of supported types.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toolchain.errors import StqError
from toolchain.frontend import keras_compat as compat
from toolchain.frontend.lowering import Lowering, Raw, Value
from toolchain.frontend.registry import HANDLERS, supported_layers
from toolchain.ir.graph import Graph


def load_keras_model(path: str | os.PathLike) -> Any:
    """Load a .h5 / .keras / SavedModel with the QKeras custom objects; an .h5 from a newer
    tf-keras (2.16-2.21) is read through its translated config (frontend/keras_compat.py)."""
    p = Path(path)
    if not p.exists():
        raise StqError(f"model file {p} does not exist")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from qkeras.utils import _add_supported_quantized_objects

    custom: dict[str, Any] = {}
    _add_supported_quantized_objects(custom)
    version = compat.writer_version(p)
    try:
        if p.suffix == ".h5" and compat.needs_translation(version):
            return compat.load_translated_h5(p, custom)
        return tf.keras.models.load_model(str(p), custom_objects=custom, compile=False)
    except Exception as exc:  # noqa: BLE001 - any loader failure means an unreadable model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        wrote = f"written by Keras {version}" if version else "no Keras version recorded"
        raise StqError(f"cannot load model {p} ({wrote}): {first[:200]}; stq reads "
                       f"{compat.READS}") from None


def _connectivity(model: Any) -> tuple[list[Any], dict[str, list[str]], list[str], str]:
    """Layers in order, each layer's input layer names, the input names and the output name."""
    import tensorflow as tf

    layers = list(model.layers)
    for layer in layers:
        if isinstance(layer, tf.keras.Model):
            raise StqError(f"layer '{layer.name}' is a nested model; flatten it before converting")
    if isinstance(model, tf.keras.Sequential):
        names = [layer.name for layer in layers]
        first = "input"
        inputs = {names[0]: [first]}
        for prev, cur in zip(names, names[1:], strict=False):
            inputs[cur] = [prev]
        return layers, inputs, [first], names[-1]
    config = model.get_config()
    inputs = {}
    for lc in config["layers"]:
        nodes = lc.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise StqError(f"layer '{lc['name']}' is used more than once (shared layer); "
                           "shared layers are not supported")
        inputs[lc["name"]] = [entry[0] for entry in nodes[0]] if nodes else []
    if len(config["output_layers"]) != 1 or len(config["input_layers"]) != 1:
        raise StqError("the model must have exactly one input and one output")
    return (layers, inputs, [config["input_layers"][0][0]], config["output_layers"][0][0])


def convert_model(model: Any, name: str | None = None) -> Graph:
    """Translate a loaded QKeras model into the integer IR graph."""
    from toolchain.frontend import handlers  # noqa: F401 - registers the handlers

    layers, inputs, input_names, output_name = _connectivity(model)
    low = Lowering(name or model.name)
    shape = tuple(int(s) for s in model.input_shape[1:])
    values: dict[str, Value] = {n: Raw(shape) for n in input_names}
    for layer in layers:
        cls = type(layer).__name__
        if cls == "InputLayer":
            values[layer.name] = Raw(shape)
            continue
        handler = HANDLERS.get(cls)
        if handler is None:
            raise StqError(f"layer '{layer.name}' has type {cls}, which is not supported; "
                           f"supported layer types: {', '.join(supported_layers())}")
        args = [values[n] for n in inputs[layer.name]]
        values[layer.name] = handler(low, layer, args)
        low.note_keras_output(layer.name, values[layer.name])
    return low.graph(values[output_name])
