"""The ensemble on a device and as attack oracles: host (the integer reference of every member,
combined exactly) and device (the ensemble firmware over the framed protocol)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.ensemble.combine import Ensemble
from toolchain.errors import StqError
from toolchain.reference import model as reference


class EnsembleOracle:
    """Real inputs in, dequantized ensemble scores out (the host reference)."""

    name = "reference"

    def __init__(self, ens: Ensemble) -> None:
        self.ens = ens
        self.g = ens.g
        self.classes = ens.classes
        self.input_shape = ens.input_shape

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return reference.quantize_input(self.g, np.asarray(x).reshape(-1, *self.input_shape))

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        return self.ens.predict(xq)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xq = self.quantize(x)
        if len(xq) == 0:
            return np.zeros((0, self.classes))
        return np.asarray(self.run_int(xq), dtype=np.float64) * self.ens.scale


class EnsembleDeviceOracle(EnsembleOracle):
    """The ensemble firmware on a device (one RUN per input, the next one streaming up)."""

    def __init__(self, ens: Ensemble, link: Any, name: str) -> None:
        super().__init__(ens)
        self.link, self.name = link, name
        info = link.info_ if link.info_ is not None else link.info()
        if info.model_hash != ens.hash:
            raise StqError(f"{name} runs model {info.model_hash[:16]}, the ensemble is "
                           f"{ens.hash[:16]}: rebuild the firmware from this ensemble")
        self.instructions: list[int] = []

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        outs = []
        for reply in self.link.infer_all([np.ascontiguousarray(r).tobytes() for r in xq]):
            outs.append(np.frombuffer(reply.output, "<i4", self.classes))
            if getattr(reply, "instructions", None) is not None:
                self.instructions.append(int(reply.instructions))
        return np.stack(outs).astype(np.int32)


@contextmanager
def open_device(ens: Ensemble, board: str | None, port: str | None, elf: Path | None,
                workdir: Path, folder: Path | None = None) -> Iterator[EnsembleDeviceOracle]:
    """The ensemble firmware on ``port`` or ``board`` (``elf``, or built from the ensemble
    ``folder`` into ``workdir``)."""
    from toolchain.device.connect import connect

    with connect(board, Path(folder or workdir), Path(workdir), port, elf) as link:
        yield EnsembleDeviceOracle(ens, link, f"port {port}" if port else f"board {board}")


def validate(ens: Ensemble, xq: np.ndarray, elf: Path, workdir: Path, board: str | None = None,
             port: str | None = None, labels: np.ndarray | None = None) -> dict:
    """Every input on the device and on the host ensemble; the outputs must be equal."""
    expected = ens.predict(xq)
    with open_device(ens, board, port, elf, workdir) as dev:
        got = dev.run_int(xq)
        instr = list(dev.instructions)
    exact = np.all(got == expected, axis=1)
    s = {"validated": int(len(xq)), "bit_exact": int(exact.sum()),
         "mismatches": int((~exact).sum()), "hash": ens.hash,
         "first_mismatch": None if exact.all() else int(np.argmin(exact)),
         "distinct_outputs": int(len({r.tobytes() for r in expected})),
         "mean_instructions": float(np.mean(instr)) if instr else None}
    if labels is not None:
        s["device_accuracy"] = float(np.mean(got.argmax(1) == labels[:len(xq)]))
        s["host_accuracy"] = float(np.mean(expected.argmax(1) == labels[:len(xq)]))
    return s


def keras_ensemble(models: list[Any]) -> Any:
    """A Keras model averaging the members' logits (the white-box target of the ensemble),
    with a Softmax on top like the members."""
    import tensorflow as tf

    from toolchain.training.jacobian import pre_softmax

    inp = tf.keras.Input(models[0].input_shape[1:], name="image")
    logits = []
    for i, m in enumerate(models):
        pre = pre_softmax(m)
        pre._name = f"member{i + 1}"
        logits.append(pre(inp))
    avg = tf.keras.layers.Average(name="average")(logits)
    return tf.keras.Model(inp, tf.keras.layers.Softmax(name="softmax")(avg), name="ensemble")
