"""What every benchmark's command line shares: the parser (its description is the module
docstring's first paragraph, plus ``--json``) and the ending (print the report, write the JSON
atomically, exit 2 with one line on a bad input)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolchain.errors import StqError
from toolchain.fsutil import write_text


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by `doc`'s first paragraph, with ``--json PATH``."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def finish(name: str, work: Callable[[], dict[str, Any]], report: Callable[[Any], str],
           json_path: Path | None) -> int:
    """Run `work`, print `report` of its result and write it to `json_path` (if given)."""
    try:
        result = work()
    except StqError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    if json_path is not None:
        write_text(json_path, json.dumps(result, indent=2) + "\n")
    return 0
