"""One CLI sub-command (name, help, description, argument set-up, runner) and the argument
helpers every command shares, so one word means one thing across commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


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
def shipped_boards() -> str:
    from toolchain.firmware.boards import BOARDS_DIR

    return ", ".join(sorted(p.stem for p in BOARDS_DIR.glob("*.toml")))


def add_board_arguments(p: argparse.ArgumentParser, required: bool = True,
                        extra: str = "") -> None:
    """--board NAME and --boards-dir DIR (a user's own board TOML files)."""
    p.add_argument("--board", required=required, metavar="BOARD",
                   help=f"board name: {shipped_boards()}{extra}, or a board file's name in "
                   "--boards-dir (`stq boards` lists them)")
    add_boards_dir_argument(p)


def add_boards_dir_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--boards-dir", type=Path, metavar="DIR",
                   help="a folder of your own board .toml files, searched before the shipped "
                   "ones (or set STQ_BOARDS_DIR)")


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are off anyway when stderr is not a terminal)")


def add_json_argument(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def port_url(text: str) -> str:
    """argparse type: a serial device path or a pyserial URL whose scheme pyserial knows (an
    unknown scheme fails here, at once, not after the connection retries)."""
    import importlib.util
    import pkgutil

    if "://" not in text:
        return text
    scheme = text.split("://", 1)[0].lower()
    if scheme.isidentifier() and importlib.util.find_spec(
            f"serial.urlhandler.protocol_{scheme}") is not None:
        return text
    import serial.urlhandler

    known = sorted(m.name.removeprefix("protocol_") + "://" for m in
                   pkgutil.iter_modules(serial.urlhandler.__path__)
                   if m.name.startswith("protocol_"))
    raise argparse.ArgumentTypeError(f"{text!r}: unknown URL scheme {scheme!r}; use a serial "
                                     f"device (e.g. /dev/ttyACM0) or one of {', '.join(known)}")


def add_link_arguments(p: argparse.ArgumentParser) -> None:
    """The device link's --link-timeout and --give-up-after (`stq validate`, `stq attack`)."""
    p.add_argument("--link-timeout", "--timeout", dest="timeout", type=positive_float,
                   help="longest wait for one reply in seconds: the ceiling of the adaptive "
                        "timeout (default 5)")
    p.add_argument("--give-up-after", type=positive_float,
                   help="seconds without a single valid frame from the device before the link "
                        "counts as dead and the run stops (default 60 for QEMU, 30 otherwise); "
                        "while frames get through, the link keeps retrying")
