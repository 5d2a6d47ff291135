#!/usr/bin/env bash
# Full-mode runs of the ablation notebooks (issue 15) on the quality study's data, resumable: each notebook keeps
# its finished (variant, seed) runs and resumes an interrupted one, so re-running the same command goes on.
# Usage: scripts/ablations.sh [NAME ...]   NAME: timescale, dendritic, memory_size, nmda (default: all four, in
# that order). Needs runs/quality/data (scripts/quality_study.py) and, for nmda, runs/quality_ampa/data (the same
# sizes and seeds with the AMPA-only cell: scripts/quality_study.py --out runs/quality_ampa --generate-config
# configs/quality_ampa.toml --data-only).
# Results: runs/ablation/NAME/ (the executed notebook, run directories, ablation.csv, figure, writeup.md); the
# write-up and its figure are copied to docs/ablations/NAME/ for the repository.
# WORKERS runs train at once, THREADS torch threads each (defaults 2 and 1, for 2 cores: the ELM's recurrence
# runs step by step, which threads barely speed up; benchmarks/sweep_speed.py compares layouts on a machine).
# The workers map one copy of the data in RAM (/dev/shm), ~10 GB for the 2 h study's training store.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}
NAMES=${*:-timescale dendritic memory_size nmda}
for name in $NAMES; do
  notebook=notebooks/${name}_ablation.ipynb
  [ -f "$notebook" ] || { echo "scripts/ablations.sh: no notebook $notebook" >&2; exit 2; }
  out=runs/ablation/$name
  mkdir -p "$out"
  extra=()
  if [ "$name" = nmda ]; then
    # the AMPA+NMDA grid points that the timescale and memory-size sweeps trained are copied, not retrained
    reuse=$(for d in runs/ablation/timescale runs/ablation/memory_size; do if [ -d "$d" ]; then printf '%s, ' "$d"; fi; done)
    extra=(-y "reuse_runs_from: [${reuse%, }]")
  fi
  # memory: the 2 h stores are read once per sweep (~10 GB) instead of once per run
  "$PY" -m papermill "$notebook" "$out/${name}_ablation.ipynb" -p out_dir "$out" -p data_mode memory \
    -p workers "$WORKERS" -p threads "$THREADS" "${extra[@]}" \
    --log-output --no-progress-bar
  mkdir -p "docs/ablations/$name"
  cp "$out/writeup.md" "$out"/*.png "docs/ablations/$name/"
done
