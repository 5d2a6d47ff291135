"""Training-data speed, in memory against lazy (input spikes read from the store per window): time per batch
(8 windows of 500 ms) and per Branch-ELM training step, on a store of the L5PC's width (1278 synapses).

Without --store, writes the tests' synthetic store (tests/fakes.py) of 16 simulations × 4 s to a temporary
directory. Batch times are the sampler alone; step times are batch + forward + backward + Adam, as
``surrogate.train`` runs them.

Prints one JSON line. Usage: python benchmarks/data_speed.py [--store PATH] [--threads 1] [--batches 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from biophys.dataset import NeuronIOStore
from surrogate.data import LazyNeuronIO, NeuronIOArrays, WindowSampler
from surrogate.models import build_model
from surrogate.objective import window_loss

REPO = Path(__file__).resolve().parents[1]
BATCH = 8
WINDOW_MS = 500
BURN_IN_MS = 150


def fake_store(path: Path) -> Path:
    """16 × 4000 ms × 1278 synapses of the tests' leaky-integrator cell."""
    sys.path.insert(0, str(REPO / "tests"))
    from fakes import fake_store as make

    return make(path, n_sims=16, n_time=4000, n_segments=639, seed=0)


def ms_per_call(fn, calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean ms per call of ``calls`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e3)
    return round(statistics.median(times), 2)


def training_step(data, model: torch.nn.Module, seed: int = 1):
    """A function that runs one training step as ``surrogate.train`` does: a batch, forward, backward, Adam."""
    optimizer = torch.optim.Adam(model.parameters())
    sampler = WindowSampler(data, BATCH, WINDOW_MS, seed=seed)

    def step() -> None:
        x, spike, soma = sampler.batch()
        loss = window_loss(model(x), spike, soma, BURN_IN_MS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_ms(data, model: torch.nn.Module, calls: int, repeats: int) -> float:
    return ms_per_call(training_step(data, model), calls, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a NeuronIO store to read (default: a synthetic one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=40, help="batches per timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = NeuronIOStore(args.store or fake_store(Path(tmp) / "wide.zarr"))
        start = time.perf_counter()
        sources = {"memory": NeuronIOArrays.from_store(store)}
        open_s = {"memory": time.perf_counter() - start}
        start = time.perf_counter()
        sources["lazy"] = LazyNeuronIO.from_store(store)
        open_s["lazy"] = time.perf_counter() - start
        torch.manual_seed(0)
        model = build_model("branch-elm", {"n_inputs": store.n_synapses})
        result = {
            "store": "synthetic" if args.store is None else str(args.store),
            "shape": [store.n_sims, store.n_time, store.n_synapses],
            "batch": BATCH,
            "window_ms": WINDOW_MS,
            "threads": args.threads,
            "load_average": round(os.getloadavg()[0], 2),
            "open_s": {k: round(v, 3) for k, v in open_s.items()},
        }
        for mode, data in sources.items():
            sampler = WindowSampler(data, BATCH, WINDOW_MS, seed=0)
            result[mode] = {"batch_ms": ms_per_call(sampler.batch, args.batches, args.repeats),
                            "elm_step_ms": step_ms(data, model, args.batches, args.repeats)}
        result["lazy_over_memory"] = {key: round(result["lazy"][key] / result["memory"][key], 2)
                                      for key in ("batch_ms", "elm_step_ms")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
