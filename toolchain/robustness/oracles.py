"""Prediction oracles for black-box attacks: real-valued inputs (N, H, W, C) in, logits out
(and ``load_inputs`` / ``check_inputs``: attack inputs from .npz / .npy, checked against a model).

An integer oracle quantizes its inputs exactly as the artifact declares
(``reference.quantize_input``), runs them on one of three backends and returns the dequantized
integer logits (``reference.dequantize_output``):

- ``ReferenceOracle``: the bit-exact NumPy reference;
- ``HostCOracle``: the generated C compiled for the host (the same C the device runs);
- ``DeviceOracle``: a device through the framed serial protocol (``toolchain.harness``): the
  virtual board, QEMU netduinoplus2, or a real board on a port.

``KerasOracle`` wraps a (float or QKeras) Keras model the same way, without quantizing.

``CountedOracle`` puts any oracle behind a query budget and a JSONL query log: every input is
one query, the log is appended (and flushed) as queries come, and the query that would exceed
the budget raises ``BudgetExhausted`` before it runs. ``art_classifier`` wraps an oracle as ART's
``BlackBoxClassifierNeuralNetwork``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from toolchain.errors import StqError
from toolchain.ir.graph import Graph
from toolchain.reference import model as reference

BACKENDS = ("reference", "host-c")  # plus device oracles: --board NAME / --port URL


class Oracle(Protocol):
    name: str
    classes: int
    input_shape: tuple[int, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class BudgetExhausted(StqError):
    """The query budget is spent; the attack stops here."""


class IntegerOracle:
    """Quantize, run integers on a backend, dequantize: subclasses implement ``run_int``."""

    name = "integer"

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.classes = int(g.tensors[g.output].size)
        self.input_shape = tuple(int(d) for d in g.tensors[g.input].shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return reference.quantize_input(self.g, np.asarray(x).reshape(-1, *self.input_shape))

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xq = self.quantize(x)
        if len(xq) == 0:
            return np.zeros((0, self.classes))
        y = self.run_int(xq).reshape(len(xq), self.classes)
        return reference.dequantize_output(self.g, y)


class ReferenceOracle(IntegerOracle):
    name = "reference"

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        return reference.predict(self.g, xq)


class HostCOracle(IntegerOracle):
    """The generated C (OUTDIR/c) compiled with the host gcc as a shared library and called
    in-process, one C call per input (about 4x the reference's rate on single queries)."""

    name = "host-c"

    def __init__(self, g: Graph, cdir: Path, workdir: Path | None = None) -> None:
        from toolchain.device.host_model import HostLibrary

        super().__init__(g)
        self.model = HostLibrary(g, Path(cdir), workdir)

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        return self.model.predict(xq)


class DeviceOracle(IntegerOracle):
    """A device speaking the framed protocol (``toolchain.harness.DeviceLink``), one input per
    RUN; the next input streams up while the device computes the current one."""

    def __init__(self, g: Graph, link: Any, name: str) -> None:
        super().__init__(g)
        self.link = link
        self.name = name
        t = g.tensors[g.output]
        self.out_dtype = np.dtype(reference.NP_DTYPE[t.dtype]).newbyteorder("<")
        info = link.info_ if link.info_ is not None else link.info()
        from toolchain.ir import artifact

        want = artifact.content_hash(g)
        if info.model_hash != want:
            raise StqError(f"{name} runs model {info.model_hash[:16]}, the artifact is "
                           f"{want[:16]}: rebuild the firmware from this artifact")

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        outs = [np.frombuffer(reply.output, self.out_dtype, self.classes)
                for reply in self.link.infer_all([row.tobytes() for row in xq])]
        return np.stack(outs).astype(np.int64)


class KerasOracle:
    """A Keras model as an oracle (float logits of its pre-softmax output, compiled once)."""

    def __init__(self, model: Any, name: str = "keras", batch: int = 256) -> None:
        import tensorflow as tf

        from toolchain.training.jacobian import pre_softmax

        pre = pre_softmax(model)
        self.fn = tf.function(lambda x: pre(x, training=False), reduce_retracing=True)
        self.name = name
        self.batch = batch
        self.classes = int(pre.output_shape[-1])
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(-1, *self.input_shape)
        outs = [self.fn(x[i:i + self.batch]).numpy() for i in range(0, len(x), self.batch)]
        return np.concatenate(outs) if outs else np.zeros((0, self.classes))


class CountedOracle:
    """An oracle behind a query budget, logging every batch of queries to a JSONL file."""

    def __init__(self, oracle: Oracle, budget: int | None = None, log: Path | None = None,
                 context: dict | None = None) -> None:
        self.oracle = oracle
        self.name = oracle.name
        self.classes = oracle.classes
        self.input_shape = oracle.input_shape
        self.budget = budget
        self.queries = 0
        self.context = dict(context or {})
        self.log_path = Path(log) if log is not None else None
        self._log = open(self.log_path, "a") if self.log_path is not None else None  # noqa: SIM115

    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.queries

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape(-1, *self.input_shape)
        n = len(x)
        if self.budget is not None and self.queries + n > self.budget:
            self._write({"event": "budget_exhausted", "queries": self.queries,
                         "budget": self.budget, "refused": n})
            raise BudgetExhausted(f"query budget {self.budget} spent on {self.name} "
                                  f"({self.queries} queries made, {n} more refused)")
        t0 = time.perf_counter()
        y = self.oracle(x)
        self.queries += n
        digest = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes())
        self._write({"event": "query", "n": n, "total": self.queries,
                     "seconds": round(time.perf_counter() - t0, 6),
                     "inputs_sha256": digest.hexdigest()[:16],
                     "top1": np.argmax(y, axis=1).tolist()})
        return y

    def _write(self, rec: dict) -> None:
        if self._log is not None:
            self._log.write(json.dumps({**self.context, **rec}) + "\n")
            self._log.flush()

    def set_context(self, **kw: Any) -> None:
        self.context.update(kw)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def art_classifier(oracle: Oracle, clip_values: tuple[float, float] = (0.0, 1.0)) -> Any:
    """The oracle as ART's BlackBoxClassifierNeuralNetwork (channels last, logits out)."""
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(oracle(x), dtype=np.float32)

    return BlackBoxClassifierNeuralNetwork(predict, oracle.input_shape, oracle.classes,
                                           channels_first=False, clip_values=clip_values)


@contextlib.contextmanager
def open_oracle(g: Graph, artifact_dir: Path, backend: str | None = None,
                board: str | None = None, port: str | None = None, elf: Path | None = None,
                workdir: Path | None = None, timeout: float | None = None,
                give_up_after: float | None = None) -> Iterator[Oracle]:
    """The integer oracle named by --oracle / --board / --port, opened (and closed after);
    ``timeout`` and ``give_up_after``: the link's --link-timeout and --give-up-after."""
    if board is None and port is None:
        backend = backend or "reference"
        if backend == "reference":
            yield ReferenceOracle(g)
        elif backend == "host-c":
            yield HostCOracle(g, Path(artifact_dir) / "c", workdir)
        else:
            raise StqError(f"unknown oracle {backend!r}; choose reference, host-c, "
                           "or a device with --board NAME / --port URL")
        return
    from toolchain.device.connect import connect

    with connect(board, Path(artifact_dir), Path(workdir or artifact_dir), port, elf,
                 timeout, give_up_after) as link:
        what = f"port {port}" if port else f"board {board}"
        yield DeviceOracle(g, link, what)


def load_inputs(path: Path, labels: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs from ``.npz`` (arrays x and y, or x_test and y_test) or ``.npy`` (x; the labels
    from ``labels``, an .npy of class indices)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise StqError(f"--inputs {path} does not exist") from None
    except (ValueError, OSError) as exc:
        raise StqError(f"--inputs {path} is not an .npz or .npy file ({exc})") from None
    if isinstance(data, np.ndarray):
        x, y = data, None
    else:
        xk = next((k for k in ("x", "x_test") if k in data.files), None)
        yk = next((k for k in ("y", "y_test") if k in data.files), None)
        if xk is None:
            raise StqError(f"--inputs {path} has arrays {', '.join(data.files)}; it needs x "
                           "(or x_test) and y (or y_test)")
        x, y = data[xk], (data[yk] if yk else None)
    if labels is not None:
        y = np.load(labels, allow_pickle=False)
    if y is None:
        raise StqError(f"--inputs {path} has no labels: add y to the .npz or give --labels")
    y = np.asarray(y).reshape(-1)
    if x.ndim < 2 or len(x) != len(y) or len(x) == 0:
        raise StqError(f"--inputs {path}: {len(x)} inputs of shape {x.shape[1:]} and {len(y)} "
                       "labels; they must match and not be empty")
    return x.astype(np.float32), y.astype(np.int64)


def check_inputs(x: np.ndarray, y: np.ndarray, shape: tuple[int, ...], classes: int,
                 clip: tuple[float, float], where: str) -> None:
    """One clear line when inputs do not fit the model."""
    if tuple(x.shape[1:]) != tuple(shape):
        raise StqError(f"{where}: inputs of shape {tuple(x.shape[1:])}, the model takes {shape}")
    if not np.all(np.isfinite(x)) or x.min() < clip[0] or x.max() > clip[1]:
        raise StqError(f"{where}: input values must be finite and in [{clip[0]:g}, {clip[1]:g}]")
    if y.min() < 0 or y.max() >= classes:
        raise StqError(f"{where}: labels must be class indices 0..{classes - 1}")
