"""The `stq` command line: one entry point, one sub-command per pipeline stage.

The commands live in a few modules grouped by stage (train, model, firmware, validate,
robustness, demo), each listing its ``Command`` records; a new command is one record there.
Every failure the user can cause is one line on stderr and a non-zero exit code: 2 for a bad
input or environment (StqError, OSError, a bad option), 1 for a result that fails its check
(a mismatch, a budget overrun), 3 for an internal error (STQ_DEBUG=1 shows its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from typing import NoReturn

from toolchain import __version__
from toolchain.cli.command import Command
from toolchain.errors import StqError

# The sub-command modules, in pipeline order; each holds a COMMANDS list (toolchain.cli.command).
GROUPS = ("toolchain.cli.train", "toolchain.cli.model", "toolchain.cli.firmware",
          "toolchain.cli.validate", "toolchain.cli.robustness", "toolchain.cli.demo",
          "toolchain.cli.experiment")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and shows each option's default (when it has one and
    its help does not already say it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (action.option_strings and default not in (None, False, [], argparse.SUPPRESS)
                and "default" not in text.lower()):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the message and where to look for help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def commands() -> list[Command]:
    return [c for g in GROUPS for c in importlib.import_module(g).COMMANDS]


def find_command(name: str) -> Command:
    for c in commands():
        if c.name == name:
            return c
    raise KeyError(name)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stq", formatter_class=HelpFormatter,
        description="Ternary QKeras models onto STM32: convert, build, run, validate, attack.",
    )
    parser.add_argument("--version", action="version", version=f"stq {__version__}",
                        help="print the stq version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in commands():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description.strip(),
                           formatter_class=HelpFormatter)
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def _run(args: argparse.Namespace) -> int:
    boards_dir = getattr(args, "boards_dir", None)
    if boards_dir is None:
        return int(args._command.run(args) or 0)
    from toolchain.firmware.boards import BOARDS_ENV

    if not boards_dir.is_dir():
        raise StqError(f"--boards-dir {boards_dir} is not a directory")
    saved = os.environ.get(BOARDS_ENV)
    os.environ[BOARDS_ENV] = str(boards_dir.resolve())
    try:
        return int(args._command.run(args) or 0)
    finally:
        if saved is None:
            os.environ.pop(BOARDS_ENV, None)
        else:
            os.environ[BOARDS_ENV] = saved


def _attach_dash_values(argv: list[str]) -> list[str]:
    """``--budget -5KB`` -> ``--budget=-5KB``: argparse takes a value that starts with a dash
    and is not a plain number for an option, so the option's own check could not say what is
    wrong with the value."""
    out: list[str] = []
    for tok in argv:
        prev = out[-1] if out else ""
        if (re.match(r"^-\d", tok) and not re.fullmatch(r"-\d+(\.\d*)?", tok)
                and prev.startswith("--") and "=" not in prev):
            out[-1] = f"{prev}={tok}"
        else:
            out.append(tok)
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")
    parser = build_parser()
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = parser.parse_args(_attach_dash_values(argv))
    except SystemExit as exc:  # --help, --version or a usage error (already printed)
        return int(exc.code or 0)
    args.argv = argv  # the command as given (reports record it)
    name = f"stq {args.command}"
    try:
        return _run(args)
    except StqError as exc:
        print(f"{name}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or device the user named: say which and why
        what = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc
        print(f"{name}: error: {_one_line(str(what))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback on request
        if os.environ.get("STQ_DEBUG"):
            raise
        print(f"{name}: internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]} "
              "(rerun with STQ_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
