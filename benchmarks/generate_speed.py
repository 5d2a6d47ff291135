"""Dataset generation throughput: simulations per hour with 1 and 2 local workers, and input drawing cost.

Each run generates ``--n-sims`` simulations of ``--cell`` (default the L5PC, whose simulation cost dominates as
in real use; the tiny ball-and-stick cell measures mostly the per-task overhead) of ``--duration-ms`` into a fresh store with the
local backend (spawned worker processes, one simulator each, one simulation per task), so the wall time
includes worker start-up, shard writing and consolidation: what a user waits for. ``worker_s_per_sim`` splits
the worker-seconds (wall × workers) one simulation costs into the simulator's run and the input draw (summed by
the workers into the store's provenance ``timing``) and the rest: start-up, shard writing, consolidation, waiting. Input drawing is also
timed separately on an L5PC-sized segment table (the synthetic L5PC's dendritic segments) for 6 s simulations.

Prints one JSON line. Usage: python benchmarks/generate_speed.py [--cell l5pc] [--morphology M] [--n-sims 8]
[--duration-ms 1000] [--sims-per-task 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from biophys import dataset, morphology, synapses, synthetic
from biophys.backends import input_segments
from biophys.genconfig import Execution, GenerateConfig
from biophys.generate import generate
from biophys.inputs import InputConfig, draw_inputs
from biophys.config import CellConfig


def generation_rate(cfg: GenerateConfig, workers: int, root: Path) -> dict:
    """Generate ``cfg`` with ``workers`` local workers; simulations per hour of wall time."""
    out = root / f"w{workers}.zarr"
    t0 = time.perf_counter()
    report = generate(cfg, out, Execution(workers=workers, progress=False, force_workers=True), log=lambda m: None)
    wall = time.perf_counter() - t0
    timing = json.loads(dataset.open_dataset(out).attrs["provenance"])["timing"]
    # Worker-seconds per simulation (wall × workers): what one core pays for one simulation, and its parts.
    paid = wall * workers / report.n_new
    simulate, draw = timing["neuron_wall_s"] / report.n_new, timing["input_draw_s"] / report.n_new
    return {"wall_s": round(wall, 2), "sims_per_hour": round(report.n_new / wall * 3600, 1),
            "output_rate_hz": round(report.output_rate_hz, 2),
            "worker_s_per_sim": {"total": round(paid, 3), "simulate": round(simulate, 3), "input_draw": round(draw, 3),
                                 "other": round(paid - simulate - draw, 3)}}


def input_draw_cost(duration_ms: int, repeats: int) -> tuple[int, float]:
    """(segments, CPU seconds of input drawing per simulated second) on the synthetic L5PC's segments."""
    table = synapses.synapse_table(morphology.segment_table(morphology.replace_axon(synthetic.synthetic_l5pc())))
    segments = input_segments(table)
    cfg = InputConfig()
    start = time.process_time()
    for k in range(repeats):
        draw_inputs(cfg, segments, duration_ms, np.random.default_rng(np.random.SeedSequence((0, k))))
    return len(segments), (time.process_time() - start) / (repeats * duration_ms / 1000.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=("l5pc", "ball-and-stick"), default="l5pc")
    parser.add_argument("--morphology", default=None, help="\"cell1\", \"synthetic\" or a .asc/.swc path "
                        "(default: the cell's own)")
    parser.add_argument("--sims-per-task", type=int, default=1)
    parser.add_argument("--n-sims", type=int, default=8)
    parser.add_argument("--duration-ms", type=int, default=1000)
    args = parser.parse_args()
    cfg = GenerateConfig(cell=CellConfig(name=args.cell, morphology=args.morphology), duration_ms=args.duration_ms,
                         n_sims=args.n_sims, base_seed=1, sims_per_task=args.sims_per_task)
    with tempfile.TemporaryDirectory(prefix="generate_speed-") as tmp:
        one = generation_rate(cfg, 1, Path(tmp))
        two = generation_rate(cfg, 2, Path(tmp))
    n_segments, draw_s = input_draw_cost(6000, 5)
    print(json.dumps({
        "benchmark": "generate_speed",
        "cell": cfg.cell.name,
        "morphology": cfg.cell.morphology,
        "config": {"n_sims": cfg.n_sims, "duration_ms": cfg.duration_ms, "sims_per_task": cfg.sims_per_task,
                   "sim": dataclasses.asdict(cfg.sim)},
        "cpus": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()),
        "workers_1": one,
        "workers_2": two,
        "scaling_2_over_1": round(two["sims_per_hour"] / one["sims_per_hour"], 2),
        "input_draw": {"segments": n_segments, "cpu_s_per_simulated_s": round(draw_s, 4)},
    }))


if __name__ == "__main__":
    main()
