"""Layer handlers, one module per layer family; importing this package registers them all.

Imported explicitly (not by scanning the folder), so an import error is an error."""

from toolchain.frontend.handlers import (  # noqa: F401 - registration side effects
    activation,
    conv,
    merge,
    normalization,
    pooling,
    shape,
)
