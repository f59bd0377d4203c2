"""The frontend's layer registry: one dict from Keras class name to a handler, filled by the
``@handles`` decorator (toolchain/frontend/handlers/), which refuses a second handler for a class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolchain.frontend.lowering import Lowering, Value

Handler = Callable[[Lowering, Any, list[Value]], Value]
HANDLERS: dict[str, Handler] = {}


def handles(*class_names: str) -> Callable[[Handler], Handler]:
    """Register a handler for Keras layer classes; a second handler for a class is a bug."""

    def register(fn: Handler) -> Handler:
        for name in class_names:
            if name in HANDLERS:
                raise RuntimeError(f"two handlers for Keras class {name}")
            HANDLERS[name] = fn
        return fn

    return register


def supported_layers() -> list[str]:
    return sorted(HANDLERS)


