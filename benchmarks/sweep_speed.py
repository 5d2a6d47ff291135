"""Training throughput of a parallel sweep: Branch-ELM training steps per second summed over W processes of T
torch threads each, for several W×T layouts side by side (what ``workers`` and ``threads`` of the ablation
notebooks choose between). Each process trains its own model on the synthetic store of the L5PC's width (batch
8 × 500 ms, in memory); all processes of a layout start their timed steps together.

Prints one JSON line. Usage: python benchmarks/sweep_speed.py [--layouts 1x2 2x1] [--steps 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import torch  # noqa: E402
from data_speed import BATCH, WINDOW_MS, fake_store, training_step  # noqa: E402  (a sibling script)

from surrogate.data import NeuronIOArrays  # noqa: E402
from surrogate.models import build_model  # noqa: E402


def _worker(store: str, threads: int, steps: int, seed: int, barrier, results) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    data = NeuronIOArrays.from_store(store)
    step = training_step(data, build_model("branch-elm", {"n_inputs": data.n_synapses}), seed)
    for _ in range(3):  # warm-up
        step()
    barrier.wait()
    start = time.time()
    for _ in range(steps):
        step()
    results.put((start, time.time()))


def steps_per_s(store: str, workers: int, threads: int, steps: int) -> float:
    """Training steps per wall second summed over ``workers`` processes of ``threads`` threads."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(store, threads, steps, seed, barrier, results))
             for seed in range(workers)]
    for p in procs:
        p.start()
    spans = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a benchmark worker exited with {p.exitcode}")
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return workers * steps / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="WORKERSxTHREADS, first = baseline")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=2, help="layouts are timed in turn, this many times")
    args = parser.parse_args()
    layouts = [tuple(int(n) for n in layout.split("x")) for layout in args.layouts]
    with tempfile.TemporaryDirectory() as tmp:
        store = str(fake_store(Path(tmp) / "wide.zarr"))
        rates = {layout: [] for layout in layouts}
        for _ in range(args.rounds):
            for layout in layouts:
                rates[layout].append(steps_per_s(store, *layout, args.steps))
    base = statistics.median(rates[layouts[0]])
    result = {
        "model": "branch-elm", "batch": BATCH, "window_ms": WINDOW_MS, "steps": args.steps, "rounds": args.rounds,
        "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
        "steps_per_s": {f"{w}x{t}": round(statistics.median(r), 2) for (w, t), r in rates.items()},
        "over_first": {f"{w}x{t}": round(statistics.median(r) / base, 2) for (w, t), r in rates.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
