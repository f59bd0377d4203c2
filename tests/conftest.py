"""Session fixtures shared by the whole suite: one trained digits STQ model, its artifact and C.

Training runs once per session (about 25 s on 2 cores) with the default, seeded settings.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")
warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)

# ART's import runs logging.config.dictConfig, which closes every logging handler that exists.
# TensorFlow's import creates absl's handler on whatever sys.stderr is at that moment: under
# pytest, the capture file of the test that happened to import TensorFlow first. If ART is then
# imported by a later test that has its own capture (capsys), absl closes pytest's capture file
# and the test, and every later test of that worker, fails with "I/O operation on closed file".
# Importing ART here, before any test imports TensorFlow, runs dictConfig while no handler exists.
import art  # noqa: E402,F401  (about 1 s; it does not import TensorFlow)

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"  # kept after the run (screenshots, reports); gitignored


@pytest.fixture(scope="session")
def digits_trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """TrainResult of the default digits STQ model (model_path, test_accuracy, ...)."""
    from toolchain.training.train import TrainConfig, train

    return train(TrainConfig(), tmp_path_factory.mktemp("train"), progress=False)


@pytest.fixture(scope="session")
def digits_h5(digits_trained: Any) -> Path:
    return Path(digits_trained.model_path)


@pytest.fixture(scope="session")
def digits_keras(digits_h5: Path) -> Any:
    from toolchain.frontend.keras import load_keras_model

    return load_keras_model(digits_h5)


@pytest.fixture(scope="session")
def digits_outdir(digits_h5: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`stq convert` output of the digits model: model.stqa, c/, convert.json."""
    from toolchain.pipeline.convert import convert

    out = tmp_path_factory.mktemp("digits-model")
    convert(digits_h5, out)
    return out


@pytest.fixture(scope="session")
def digits_graph(digits_outdir: Path) -> Any:
    from toolchain.reference.model import load_artifact_dir

    return load_artifact_dir(digits_outdir)


@pytest.fixture(scope="session")
def digits_data() -> Any:
    from toolchain.training import datasets

    return datasets.digits()


# The unit tier (`make test-unit`, `pytest -m unit`, under a minute): tests that need no trained
# model, no firmware build, no emulator and no TensorFlow graph compile. Everything else still
# runs in `make test` (and in CI). A test is heavy when it is marked slow, uses one of these
# fixtures, lives in one of these modules (each trains, compiles C or builds Keras models in most
# of its tests), or is named below (measured: over a second on this machine).
HEAVY_FIXTURES = {"digits_trained", "digits_h5", "digits_keras", "digits_outdir", "digits_graph",
                  "fw_build", "fw_model_outdir", "builds", "resnet8_outdir", "probe_graphs",
                  "fp_h5"}
HEAVY_MODULES = {"test_zoo_train", "test_zoo_variants", "test_reference_vs_qkeras",
                 "test_fast_kernels", "test_tflite", "test_tflite_kernels", "test_keras_compat",
                 "test_frontend", "test_fw_c_warnings", "test_jacobian", "test_kernel_shapes",
                 "test_c_exact", "test_install", "test_budget_arena", "test_quanos_jrsearch"}
HEAVY_TESTS = {"test_round_trip_keeps_hash_and_results", "test_speech_commands_mfcc",
               "test_no_live_overlap_and_bounds", "test_ensemble_rejects_members_with_other_inputs",
               "test_masking_checks_fire_on_a_gradient_masking_model"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        heavy = (item.get_closest_marker("slow") is not None
                 or HEAVY_FIXTURES & set(getattr(item, "fixturenames", ()))
                 or item.path.stem in HEAVY_MODULES
                 or getattr(item, "originalname", item.name) in HEAVY_TESTS)
        if not heavy:
            item.add_marker(pytest.mark.unit)
        if item.get_closest_marker("long") is not None:
            item.add_marker(pytest.mark.timeout(0))  # whole campaigns: no per-test limit
