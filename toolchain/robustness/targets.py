"""The model under attack, as the evaluation sees it: a converted model (its bit-exact reference
and the firmware built from it) or an ensemble folder (toolchain/ensemble: the members' integer
references combined exactly, and the ensemble firmware), with the Keras model white-box attacks
take their gradients from (for an ensemble: the members' logits averaged,
``ensemble.device.keras_ensemble``), and the second integer backend every adversarial input is
compared on (a device, the host-compiled C, or a board farm).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.errors import StqError
from toolchain.robustness import oracles


@dataclass
class Target:
    g: Any  # the integer graph whose input format every input is quantized with (or None)
    host: Any  # the host oracle the figures are scored on
    ensemble: Any = None  # toolchain.ensemble.combine.Ensemble, for an ensemble folder


def is_ensemble(path: Path | None) -> bool:
    from toolchain.ensemble.combine import is_ensemble as _is

    return path is not None and Path(path).is_dir() and _is(path)


def load(artifact: Path | None, keras: Any, g: Any = None) -> Target:
    """The integer host model of ``artifact`` (a `stq convert` OUTDIR or an ensemble folder),
    or the Keras model itself when there is none."""
    from toolchain.reference import model as reference

    if artifact is None:
        return Target(None, oracles.KerasOracle(keras, "keras"))
    if is_ensemble(artifact):
        from toolchain.ensemble import combine
        from toolchain.ensemble.device import EnsembleOracle

        ens = combine.load(artifact)
        return Target(ens.g, EnsembleOracle(ens), ens)
    g = g if g is not None else reference.load_artifact_dir(artifact)
    return Target(g, oracles.ReferenceOracle(g))


def ensemble_keras(folder: Path) -> Any:
    """The white-box model of an ensemble folder: its members' Keras models (the ``source``
    each member's `stq convert` recorded), logits averaged."""
    import json

    from toolchain.ensemble.combine import MANIFEST
    from toolchain.ensemble.device import keras_ensemble
    from toolchain.frontend.keras import load_keras_model

    man = json.loads((Path(folder) / MANIFEST).read_text())
    srcs = [m.get("source") for m in man["members"]]
    missing = [m["name"] for m, s in zip(man["members"], srcs, strict=True)
               if not s or not Path(s).is_file() or Path(s).suffix.lower() == ".tflite"]
    if missing:
        raise StqError(f"{Path(folder) / MANIFEST}: no QKeras model recorded (or found) for "
                       f"member(s) {', '.join(missing)}; white-box attacks on an ensemble need "
                       "every member's .h5 (build it with `stq ensemble` from `stq convert` "
                       "OUTDIRs of .h5 models)")
    return keras_ensemble([load_keras_model(s) for s in srcs])


@contextmanager
def open_device(t: Target, artifact: Path | None, backend: str, board: str | None,
                port: str | None, elf: Path | None, workdir: Path, farm: Any = None,
                link: tuple[float | None, float | None] = (None, None)) -> Iterator[Any]:
    """The second integer backend to compare with the host model, if any: a board farm, a
    device (the ensemble firmware for an ensemble), or the host-compiled C."""
    if t.ensemble is not None:
        if farm is not None:
            raise StqError("an ensemble runs on one device (--board or one --port), not on a "
                           "board farm")
        if backend == "host-c" and board is None and port is None:
            raise StqError("an ensemble has no host-C oracle: use --oracle reference or a "
                           "device (--board / --port)")
        if board is None and port is None:
            yield None
            return
        from toolchain.ensemble.device import open_device as open_ensemble

        with open_ensemble(t.ensemble, board, port, Path(elf) if elf else None,
                           workdir, artifact) as dev:
            yield dev
        return
    if farm is not None:  # several devices (toolchain.farm): a FarmOracle
        from toolchain.farm.attack import FarmOracle

        with FarmOracle(t.g, farm) as fo:
            yield fo
        return
    if t.g is None or (board is None and port is None and backend == "reference"):
        yield None
        return
    with oracles.open_oracle(t.g, artifact, backend, board, port, elf, workdir, *link) as o:
        yield o
