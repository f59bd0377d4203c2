"""The one list of C flags stq compiles with, host and target alike.

The generated model C must be warning-free under ``MODEL_STRICT`` (ISO C99, pedantic); the
hand-written firmware runtime under ``STRICT`` (it uses GNU attributes and inline assembly)."""

from __future__ import annotations

C_STD = "-std=c99"
WARNINGS = ("-Wall", "-Wextra")
STRICT = (C_STD, *WARNINGS, "-Werror")
MODEL_STRICT = (*STRICT, "-pedantic")
