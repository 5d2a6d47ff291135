#!/usr/bin/env bash
# The whole pipeline on a small embedded default, as `make demo` runs it:
#   simulate the cell on random synaptic input (train / valid / test stores)
#   → fit a Branch-ELM and a TCN briefly → evaluate both on the held-out simulations → report.
# Usage: scripts/demo.sh [OUT_DIR]   (default runs/demo). Re-running resumes the datasets and refits the models.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/demo}
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
DATA="$OUT/data"
start=$(date +%s)
stage() { printf '\n=== [%4ds] %s\n' "$(( $(date +%s) - start ))" "$*"; }

# DEMO_MORPHOLOGY when set, else Hay et al.'s cell1 when `python -m biophys fetch-morphology` has cached it (sha256-checked), else the synthetic L5PC.
if [ -n "${DEMO_MORPHOLOGY:-}" ]; then
    MORPHOLOGY=$DEMO_MORPHOLOGY
elif $PY -c "import sys; from biophys.morphology import MorphologyError, morphology_file
try: morphology_file('l5pc', 'cell1')
except MorphologyError: sys.exit(1)" 2>/dev/null; then
    MORPHOLOGY=cell1
else
    MORPHOLOGY=synthetic
fi

mkdir -p "$DATA"
stage "1/4 simulating the cell (NEURON, morphology $MORPHOLOGY) on random synaptic input"
for split in train:1:${DEMO_TRAIN_SIMS:-48} valid:2:${DEMO_VALID_SIMS:-8} test:3:${DEMO_TEST_SIMS:-8}; do
    IFS=: read -r name seed n <<<"$split"
    $PY -m biophys generate --config configs/demo.toml --morphology "$MORPHOLOGY" --out "$DATA/$name.zarr" \
        --n-sims "$n" --seed "$seed" --workers "$WORKERS"
done
$PY -m biophys inspect "$DATA/train.zarr"

stage "2/4 fitting a Branch-ELM"
rm -rf "$OUT/branch-elm" "$OUT/tcn"
$PY -m surrogate train --model branch-elm --train "$DATA/train.zarr" --valid "$DATA/valid.zarr" \
    --out "$OUT/branch-elm" --config configs/demo_train.toml

stage "3/4 fitting a TCN"
$PY -m surrogate train --model tcn --model-config '{"preset": "small"}' --train "$DATA/train.zarr" \
    --valid "$DATA/valid.zarr" --out "$OUT/tcn" --config configs/demo_train.toml

stage "4/4 evaluating on held-out simulations and writing the report"
$PY -m analysis report "$OUT/branch-elm" "$OUT/tcn" --data "$DATA/test.zarr" --valid "$DATA/valid.zarr" \
    --out "$OUT"
stage "done: $OUT/report.md"
