"""Symbol sizes as `arm-none-eabi-nm` lists them (tests comparing the budget with the ELF)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def nm_sizes(*paths: Path) -> dict[str, int]:
    """Defined symbols with a size, as `arm-none-eabi-nm -S` lists them (clones folded)."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", "--defined-only", *map(str, paths)],
                         capture_output=True, text=True, check=True).stdout
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            name = parts[3].split(".", 1)[0]
            sizes[name] = sizes.get(name, 0) + int(parts[1], 16)
    return sizes
