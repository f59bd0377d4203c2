"""One CLI sub-command: its name, one-line help, description, argument set-up and runner."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def collect(namespace: dict, *names: str) -> list[Command]:
    """The Command records of a cli module that names, for each command N, N_HELP, N_DOC,
    add_N_arguments and run_N."""
    return [Command(n, namespace[f"{n.upper()}_HELP"], namespace[f"{n.upper()}_DOC"],
                    namespace[f"add_{n}_arguments"], namespace[f"run_{n}"]) for n in names]
