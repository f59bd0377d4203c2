"""Build hook: ship the top-level ``firmware/`` and ``boards/`` folders inside the wheel as
``toolchain/_data/firmware`` and ``toolchain/_data/boards`` (toolchain/resources.py finds them
there). Everything else is declared in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("firmware", "boards")
ROOT = Path(__file__).resolve().parent


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders directly
        for name in DATA:
            dest = Path(self.build_lib) / "toolchain" / "_data" / name
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ROOT / name, dest,
                            ignore=shutil.ignore_patterns(".*", "__pycache__", "*.o", "*.d"))


setup(cmdclass={"build_py": BuildPyWithData})
