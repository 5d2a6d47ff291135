#!/usr/bin/env bash
# The headline comparison: a Branch-ELM (default config, 8,002 parameters) against a TCN of ~1.25M parameters,
# both fitted to the same L5PC data for the same wall-clock budget, then scored on held-out simulations.
#   simulate train / valid / test stores (configs/quality.toml, real morphology) → train both → report.
# Usage: scripts/quality.sh [MORPHOLOGY]   (or MORPHOLOGY=...: "cell1", "synthetic" or a .asc/.swc path; default
# cell1, Hay et al. 2011's reconstruction, after `python -m biophys fetch-morphology`).
# Results: $QUALITY_OUT (default runs/quality)/report.md.
# Sizes (env): TRAIN_SIMS=64 VALID_SIMS=8 TEST_SIMS=8 DURATION_MS=4000 WALL_S=600 (per model) — about 25 min
# on 2 cores.
# Re-running resumes the datasets and refits both models.
# The study at scale (≥ 2 h of data, a learning curve of three models): scripts/quality_study.py.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${QUALITY_OUT:-runs/quality}
PY=.venv/bin/python
# Every step at the lowest priority: this 2-core machine runs other work that must not be slowed.
RUN="nice -n 19 $PY"
TRAIN_SIMS=${TRAIN_SIMS:-64}
VALID_SIMS=${VALID_SIMS:-8}
TEST_SIMS=${TEST_SIMS:-8}
DURATION_MS=${DURATION_MS:-4000}
# The same training budget for both models, in seconds of wall clock.
WALL_S=${WALL_S:-600}
# ~1.25M parameters (1278 inputs × 32 channels × 27 ms first kernel + 6 layers of 32 × 32 × 24 ms); receptive
# field 165 ms. Beniaguev et al.'s "large" preset (~11M) would get too few steps in the budget on this CPU.
TCN_CONFIG='{"n_layers": 7, "channels": 32, "first_kernel": 27, "kernel": 24, "dilation_base": 1}'
# Identical optimisation settings for both models except the epoch count: each model's cosine learning-rate
# schedule is sized so that the wall clock, not the schedule, ends the run, with the learning rate mostly
# decayed by then. Measured here (32 × 4 s train, 8 × 4 s valid): one epoch of 100 batches of 8 windows plus a
# validation takes ~11 s (ELM) and ~66 s (TCN) while other work loads the machine, so WALL_S/10 and WALL_S/60
# epochs take ~10 % over the budget; on an idle machine both end their schedules early (64 × 4 s train:
# ELM 5.6 s and TCN 39 s per epoch, 336 s and 389 s in all).
TRAIN_ARGS=(--batches-per-epoch 100 --batch-size 8 --window-ms 500 --burn-in-ms 150 --lr 0.005 --seed 0
            --threads 2 --max-wall-s "$WALL_S" --no-progress)
ELM_EPOCHS=$(( WALL_S / 10 > 0 ? WALL_S / 10 : 1 ))
TCN_EPOCHS=$(( WALL_S / 60 > 0 ? WALL_S / 60 : 1 ))
DATA="$OUT/data"
start=$(date +%s)
stage() { printf '\n=== [%4ds] %s\n' "$(( $(date +%s) - start ))" "$*"; }

MORPHOLOGY=${1:-${MORPHOLOGY:-cell1}}
mkdir -p "$DATA"

stage "1/4 simulating the cell (morphology $MORPHOLOGY) on random synaptic input"
for split in train:1:$TRAIN_SIMS valid:2:$VALID_SIMS test:3:$TEST_SIMS; do
    IFS=: read -r name seed n <<<"$split"
    stage "generating $name: $n × $DURATION_MS ms, seed $seed"
    $RUN -m biophys generate --config configs/quality.toml --morphology "$MORPHOLOGY" --out "$DATA/$name.zarr" \
        --n-sims "$n" --duration-ms "$DURATION_MS" --seed "$seed" --workers 2 --no-progress
done
for name in train valid test; do
    $RUN -m biophys inspect "$DATA/$name.zarr"
done

rm -rf "$OUT/branch-elm" "$OUT/tcn"
stage "2/4 fitting a Branch-ELM (default config) for ${WALL_S}s, $ELM_EPOCHS epochs"
$RUN -m surrogate train --model branch-elm --epochs "$ELM_EPOCHS" --train "$DATA/train.zarr" \
    --valid "$DATA/valid.zarr" --out "$OUT/branch-elm" "${TRAIN_ARGS[@]}"

stage "3/4 fitting a TCN ($TCN_CONFIG) for ${WALL_S}s, $TCN_EPOCHS epochs"
$RUN -m surrogate train --model tcn --epochs "$TCN_EPOCHS" --model-config "$TCN_CONFIG" \
    --train "$DATA/train.zarr" --valid "$DATA/valid.zarr" --out "$OUT/tcn" "${TRAIN_ARGS[@]}"

stage "4/4 scoring both on the test store (spike threshold chosen on valid) and writing the report"
$RUN -m analysis report "$OUT/branch-elm" "$OUT/tcn" --data "$DATA/test.zarr" --valid "$DATA/valid.zarr" \
    --threads 2 --out "$OUT"
stage "done: $OUT/report.md"
