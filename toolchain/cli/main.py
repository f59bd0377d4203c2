"""The `stq` command line: one entry point, one sub-command per pipeline stage.

The commands live in a few modules grouped by stage (train, model, firmware, validate,
robustness, demo), each listing its ``Command`` records; a new command is one record there.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from toolchain import __version__
from toolchain.cli.command import Command
from toolchain.errors import StqError

# The sub-command modules, in pipeline order; each holds a COMMANDS list (toolchain.cli.command).
GROUPS = ("toolchain.cli.train", "toolchain.cli.model", "toolchain.cli.firmware",
          "toolchain.cli.validate", "toolchain.cli.robustness", "toolchain.cli.demo",
          "toolchain.cli.experiment")


def commands() -> list[Command]:
    return [c for g in GROUPS for c in importlib.import_module(g).COMMANDS]


def find_command(name: str) -> Command:
    for c in commands():
        if c.name == name:
            return c
    raise KeyError(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stq",
        description="Ternary QKeras models onto STM32: convert, build, run, validate, attack.",
    )
    parser.add_argument("--version", action="version", version=f"stq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in commands():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description.strip())
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._command.run(args) or 0)
    except StqError as exc:
        print(f"stq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
