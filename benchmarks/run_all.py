"""Run every benchmark script in this folder, one after the other. The scripts that measure a
converted model (an OUTDIR argument) get the committed digits STQ+JR model
(docs/results/digits-robustness/models/digits_stq-jr.h5), converted once into a temporary
folder."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE.parent / "docs" / "results" / "digits-robustness" / "models" / "digits_stq-jr.h5"
NOT_SCRIPTS = {"run_all.py", "models.py", "bench_cli.py"}  # this file, and modules
TAKE_OUTDIR = {"attack_bench.py", "budget_bench.py", "farm_bench.py", "link_bench.py",
               "qemu_cost.py"}  # budget_bench: optional (its digits row)

if __name__ == "__main__":
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        outdir = Path(tmp) / "digits"
        rc = subprocess.run([sys.executable, "-m", "toolchain.cli.main", "convert", str(MODEL),
                             "-o", str(outdir)], cwd=HERE.parent).returncode
        if rc != 0:
            print(f"run_all: `stq convert {MODEL}` failed (exit {rc})", file=sys.stderr)
            sys.exit(rc)
        for script in sorted(HERE.glob("*.py")):
            if script.name in NOT_SCRIPTS:
                continue
            extra = [str(outdir)] if script.name in TAKE_OUTDIR else []
            print(f"== {script.name} {' '.join(extra)}", flush=True)
            status |= subprocess.run([sys.executable, str(script), *extra]).returncode
    sys.exit(status)
