"""Where stq finds the files it ships: the C runtime (``firmware/``) and the board files
(``boards/``). In a source checkout they are the top-level folders; in an installed wheel they
are package data under ``toolchain/_data/``. One place decides, so no module walks up from its
own ``__file__``."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


@cache
def data_dir(name: str) -> Path:
    """The shipped folder ``name`` ("firmware" or "boards")."""
    packaged = Path(str(resources.files("toolchain") / "_data" / name))
    if packaged.is_dir():
        return packaged
    return _CHECKOUT / name


def firmware_dir() -> Path:
    return data_dir("firmware")


def boards_dir() -> Path:
    return data_dir("boards")
