"""Convert a trained QKeras model (.h5, .keras or SavedModel) into the integer artifact
(OUTDIR/model.stqa), its C sources (OUTDIR/c/) and a summary (OUTDIR/convert.json)."""

from __future__ import annotations

import argparse
import json

from toolchain.packing import SCHEMES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QKeras model file (.h5 / .keras) or SavedModel directory")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    p.add_argument("--packing", choices=SCHEMES, default="2bit",
                   help="ternary weight packing: 2bit (4 per byte) or base3 (5 per byte)")
    p.add_argument("--kernels", choices=("optimized", "reference"), default="optimized",
                   help="C kernels: optimized (DSP conv where available, default) or the "
                   "reference loops only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from toolchain.convert import convert

    s = convert(args.model, args.output, args.packing, args.kernels)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"model {s['model']}: {len(s['layers'])} layers, {s['macs']:,} MACs, "
          f"weights+params {s['weight_bytes']:,} B ({s['packing']}), arena {s['arena_bytes']:,} B, "
          f"{s['kernels']} kernels (scratch {s['scratch_bytes']:,} B)")
    for layer in s["layers"]:
        shape = "x".join(map(str, layer["output"]))
        print(f"  {layer['name']:<28} {layer['op']:<17} {layer['weights'] or '-':<8} "
              f"-> {shape:<10} {layer['dtype']:<6} {layer['flash_bytes']:>8,} B")
    print(f"artifact {s['artifact']}  (hash {s['hash'][:16]})")
    print(f"C sources {s['c_dir']}/")
    return 0
