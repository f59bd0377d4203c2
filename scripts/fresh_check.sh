#!/usr/bin/env bash
# Fresh-machine check: clone this repository (its committed HEAD) into an empty directory and
# run exactly the README's two commands there. A missing install step or an untracked file the
# project depends on fails here. Usage: scripts/fresh_check.sh [WORKDIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d -t stq-fresh-XXXXXX)}"
mkdir -p "$work"
if [ -n "$(ls -A "$work")" ]; then
    echo "fresh_check: $work is not empty" >&2
    exit 2
fi
git clone --quiet "$repo" "$work/stq"
cd "$work/stq"
echo "[fresh_check] $(git log -1 --oneline) in $work/stq"
make demo
make test
echo "[fresh_check] both README commands passed on a fresh clone"
