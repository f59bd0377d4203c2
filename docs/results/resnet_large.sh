#!/bin/sh
# The ~410 KB model of issue 17 (item 5): the zoo's resnet_large (48/96/192/240 filters) trained
# as stq on the CIFAR-10 subset, converted, its budget against 410 KB, built for every shipped
# board, and N test images checked bit-exact on QEMU netduinoplus2.
#
#   sh docs/results/resnet_large.sh OUT [DATA_DIR]    (EPOCHS=2 LIMIT=3 SEED=0 by default)
#
# Writes OUT/zoo/ (the .h5, training log and summary), OUT/model/ (the artifact and C),
# OUT/budget/ (budget.{md,json,html}, verified against the netduinoplus2 ELF), OUT/build/<board>/,
# OUT/boards.json (flash / RAM used per board, or the link error), OUT/validate/ (summary of the
# bit-exact check) and OUT/summary.json (everything above in one file).
set -eu
OUT=${1:?usage: sh docs/results/resnet_large.sh OUT [DATA_DIR]}
DATA=${2:-../shared/data/cifar10-subset}
EPOCHS=${EPOCHS:-2}
LIMIT=${LIMIT:-3}
SEED=${SEED:-0}
STQ=${STQ:-stq}
PYTHON=${PYTHON:-python}
BUDGET=410KB
mkdir -p "$OUT"
start=$(date +%s)
[ -f "$OUT/zoo/resnet_large_stq.h5" ] || $STQ train --model resnet_large --variant stq \
    --dataset cifar10 --data-dir "$DATA" --epochs "$EPOCHS" --seed "$SEED" --no-progress \
    -o "$OUT/zoo" > "$OUT/train.log"
[ -f "$OUT/model/model.stqa" ] || $STQ convert "$OUT/zoo/resnet_large_stq.h5" -o "$OUT/model" \
    > "$OUT/convert.log"
# every shipped board: a model that does not fit fails at link time (recorded, not fatal)
boards=$($STQ boards --json | $PYTHON -c 'import json,sys; print(" ".join(b["name"] for b in json.load(sys.stdin)))')
echo "{" > "$OUT/boards.json.tmp"
sep=""
for b in $boards; do
    if $STQ build "$OUT/model" --board "$b" -o "$OUT/build/$b" --json > "$OUT/build-$b.json" \
        2> "$OUT/build-$b.err"; then
        printf '%s"%s": %s\n' "$sep" "$b" "$(cat "$OUT/build-$b.json")" >> "$OUT/boards.json.tmp"
    else
        printf '%s"%s": {"error": %s}\n' "$sep" "$b" \
            "$($PYTHON -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))' \
            < "$OUT/build-$b.err")" >> "$OUT/boards.json.tmp"
    fi
    sep=","
done
echo "}" >> "$OUT/boards.json.tmp"
mv "$OUT/boards.json.tmp" "$OUT/boards.json"
# the budget against 410 KB, verified against the netduinoplus2 firmware (exit 1 = over)
rc=0
$STQ budget "$OUT/model" --budget "$BUDGET" --elf "$OUT/build/netduinoplus2/firmware.elf" \
    -o "$OUT/budget" > "$OUT/budget.log" 2>&1 || rc=$?
[ "$rc" -le 1 ] || { cat "$OUT/budget.log"; exit "$rc"; }
# LIMIT test images, quantized as the model takes them, checked bit-exact on QEMU
$PYTHON - "$OUT" "$DATA" "$LIMIT" <<'EOF'
import sys
import numpy as np
from toolchain.reference import model as reference
from toolchain.training import datasets
out, data, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
g = reference.load_artifact_dir(f"{out}/model")
np.save(f"{out}/inputs.npy", reference.quantize_input(g, datasets.load("cifar10", data).x_test[:limit]))
EOF
$STQ validate --board netduinoplus2 --artifact "$OUT/model" --inputs "$OUT/inputs.npy" \
    --elf "$OUT/build/netduinoplus2/firmware.elf" --restart --no-progress -o "$OUT/validate" \
    --json > "$OUT/validate.json"
end=$(date +%s)
$PYTHON - "$OUT" "$((end - start))" <<'EOF'
import json, sys
from pathlib import Path
out, seconds = Path(sys.argv[1]), int(sys.argv[2])
budget = json.loads((out / "budget" / "budget.json").read_text())
boards = json.loads((out / "boards.json").read_text())
val = json.loads((out / "validate.json").read_text())
train = json.loads(next((out / "zoo").glob("*.json")).read_text())
conv = json.loads((out / "model" / "convert.json").read_text())
s = {"model": "resnet_large", "variant": "stq", "artifact_hash": conv["hash"],
     "train": train, "weights_bytes": budget["flash"]["weights"],
     "footprint": budget["footprint"], "budget_bytes": budget["budget_bytes"],
     "checks": budget["checks"], "ram": {k: budget["ram"][k] for k in ("arena", "scratch")},
     "boards": {b: r.get("usage", r) for b, r in boards.items()},
     "validate": val, "seconds": seconds}
(out / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
print(json.dumps({k: s[k] for k in ("artifact_hash", "weights_bytes", "footprint", "boards")}, indent=1))
print(f"bit-exact {val.get('bit_exact')}/{val.get('validated')}; {seconds} s")
EOF
