"""Forward + backward wall time of the released NeuronIO Branch-ELM (8,002 parameters), batch 8: the fast path
(vectorised input path + fused memory recurrence) against the plain per-step loop, side by side in one process.

Prints one JSON line. Usage: python benchmarks/elm_speed.py [--threads 2] [--repeats 3] [--steps 500 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from surrogate.elm_fused import recurrence_backend
from surrogate.models import build_model, num_params

BATCH = 8
INPUT_RATE_PER_MS = 0.005  # NeuronIO-like sparse input: spike probability per channel per 1 ms bin


def time_forward_backward(model, x: torch.Tensor, fast: bool, repeats: int) -> float:
    """Median seconds of one forward + backward (after one warm-up run)."""
    model.fast = fast
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(x).square().mean().backward()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model("branch-elm")
    n_in = model.config.n_inputs
    result = {
        "model": "branch-elm",
        "params": num_params(model),
        "batch": BATCH,
        "threads": args.threads,
        "repeats": args.repeats,
        "backend": recurrence_backend("cpu"),
        "torch": torch.__version__,
    }
    for steps in args.steps:
        spikes = (torch.rand(BATCH, steps, n_in) < INPUT_RATE_PER_MS).float()
        sign = torch.cat([torch.ones(n_in // 2), -torch.ones(n_in - n_in // 2)])
        x = spikes * sign
        fast = time_forward_backward(model, x, True, args.repeats)
        plain = time_forward_backward(model, x, False, args.repeats)
        result[f"T{steps}"] = {"fast_s": round(fast, 4), "plain_s": round(plain, 4), "speedup": round(plain / fast, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
