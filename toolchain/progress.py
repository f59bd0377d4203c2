"""Progress bars (tqdm) for the loops a person waits for: validation, training epochs, demo
stages. They go to stderr, and only when stderr is a terminal: never in logs, pipes or CI, and
never with ``--no-progress`` or STQ_NO_PROGRESS set."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm


def wanted(enabled: bool = True) -> bool:
    """Whether to draw bars: asked for, not switched off, and stderr is a terminal."""
    return enabled and not os.environ.get("STQ_NO_PROGRESS") and sys.stderr.isatty()


def bar(total: int | None, desc: str, enabled: bool = True, **kw: Any) -> tqdm:
    """A tqdm bar on stderr, disabled (a no-op object) unless :func:`wanted`."""
    return tqdm(total=total, desc=desc, disable=not wanted(enabled), file=sys.stderr,
                dynamic_ncols=True, leave=False, **kw)


def write(line: str, active: tqdm | None = None) -> None:
    """Print a line on stdout without breaking a bar that is being drawn."""
    if active is not None and not active.disable:
        tqdm.write(line, file=sys.stdout)
    else:
        print(line, flush=True)
