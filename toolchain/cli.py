"""The `stq` command line: one entry point, one sub-command per pipeline stage.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
the table below names them, so a new stage is one line here plus its module.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from toolchain.errors import StqError

# (command, module, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("train", "toolchain.commands.train", "train a zoo model (QKeras) on a dataset"),
    ("convert", "toolchain.commands.convert", "QKeras model -> integer artifact + C sources"),
    ("reference", "toolchain.commands.reference", "run the bit-exact NumPy reference on inputs"),
    ("build", "toolchain.commands.build", "firmware + model -> ELF/BIN/HEX for a board"),
    ("flash", "toolchain.commands.flash", "program a board (st-flash / openocd / pyocd)"),
    ("budget", "toolchain.commands.budget", "per-layer flash/RAM, arena plan, board and budget"),
    ("run", "toolchain.commands.run", "run firmware on an emulated board (QEMU)"),
    ("validate", "toolchain.commands.validate", "run inputs on a device, compare with the host"),
    ("attack", "toolchain.commands.attack", "adversarial attacks on the host model and device"),
    ("report", "toolchain.commands.report", "robustness report from attack results"),
    ("demo", "toolchain.commands.demo", "the whole pipeline on the bundled digits data"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stq",
        description="Ternary QKeras models onto STM32: convert, build, run, validate, attack.",
    )
    parser.add_argument("--version", action="version", version="stq 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except StqError as exc:
        print(f"stq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
