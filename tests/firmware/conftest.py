"""Fixtures of the firmware/board tests: the converted digits model and one build per board.

The model is ``digits_outdir`` from tests/conftest.py (a converted digits model: OUTDIR with
model.stqa and c/). Before that fixture exists, STQ_TEST_MODEL_DIR may point at any directory
holding generated model C sources (docs/c_api.md); the bit-exact test always needs the real one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from toolchain.firmware.boards import load_board
from toolchain.firmware.build import BuildResult, build

MODEL_ENV = "STQ_TEST_MODEL_DIR"


@pytest.fixture(scope="session")
def fw_model_outdir(request: pytest.FixtureRequest) -> Path:
    try:
        return Path(request.getfixturevalue("digits_outdir"))
    except pytest.FixtureLookupError:
        if os.environ.get(MODEL_ENV):
            return Path(os.environ[MODEL_ENV])
        pytest.fail(f"needs the digits_outdir fixture (tests/conftest.py) or {MODEL_ENV}")


@pytest.fixture(scope="session")
def fw_build(
    fw_model_outdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], BuildResult]:
    """board name -> the model built for that board (each board built once per session)."""
    root = tmp_path_factory.mktemp("fw-builds")
    cache: dict[str, BuildResult] = {}

    def get(name: str) -> BuildResult:
        if name not in cache:
            cache[name] = build(fw_model_outdir, load_board(name), root / name)
        return cache[name]

    return get


@pytest.fixture
def stq_cmd() -> Callable[[str, list[str]], int]:
    """Run one `stq NAME ARGS` sub-command as toolchain/cli.py does (StqError -> one line on
    stderr, exit code 2) without importing the other commands (TensorFlow)."""
    from toolchain.cli.main import main

    return lambda name, argv: main([name, *argv])
