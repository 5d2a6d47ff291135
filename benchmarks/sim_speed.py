"""Simulation speed and accuracy of engines and integration settings for the full L5PC under NeuronIO-like input.

Every setting runs in its own freshly spawned process (NEURON holds one model per process; CoreNEURON's library
is chosen per process), on the same drawn NeuronIO inputs (one per seed), and is timed there in CPU seconds of
that process without the cell's build (the less noisy measure on a shared machine; wall seconds as well). Each
setting's somatic traces (1 ms samples, spikes clipped at −55 mV) and output spikes (±2 ms), pooled over the
seeds, are compared with the baseline, fixed dt = 0.025 ms backward Euler on NEURON. CoreNEURON settings are
also compared with NEURON at the same dt (8 kHz somatic RMSE, spike counts and times: the engine bounds,
≤ 0.05 mV, identical counts, ≤ 0.1 ms). The baseline and the chosen setting also run the original NeuronIO
pickle's input (reference_traces/original_l5pc_neuronio_seed77.p) against the original model's soma trace. The
chosen setting is the fastest one within ``--max-rmse-mv``, ``--min-matched`` and ``--max-spurious`` of the
baseline (and, CoreNEURON, within the engine bounds) that also meets the targets against the original model.

``speedup_vs_neuron_cn12`` is NEURON at Crank–Nicolson dt 1/12 ms (the dataset default before the engine
choice) over CoreNEURON at the same dt with the tuned mechanism build (the new default), in CPU seconds.

Prints one JSON line (progress goes to stderr). Usage:
    python benchmarks/sim_speed.py --quick            (3 draws × 1.5 s on cell1, a few minutes)
    python benchmarks/sim_speed.py [--morphology cell1] [--duration-ms 1500] [--seeds 1 2 ... 12]
        [--settings fixed_dt0.1_cn ...] [--flag-sets NAME="-O3 ..." ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from biophys.config import CellConfig, SimConfig
from biophys.features import compare_traces
from biophys.inputs import InputConfig, draw_inputs
from biophys.isolated import run_isolated
from biophys.mechanisms import flags
from biophys.neuronio_format import read_inputs
from biophys.simulator import CellSimulator
from conventions.provenance import git_commit

REPO = Path(__file__).resolve().parents[1]
REFERENCE_PICKLE = REPO.parent / "shared" / "data" / "reference_traces" / "original_l5pc_neuronio_seed77.p"
#: cell1 for --quick: the project's test data copy where present, else the cached download.
CELL1 = REPO.parent / "shared" / "data" / "morphologies" / "cell1.asc"
BASELINE_NAME = "baseline_fixed_dt0.025_be"
BASELINE = SimConfig(dt_ms=0.025, method="fixed", secondorder=0)
CN12 = {"dt_ms": 1 / 12, "secondorder": 2}
NEURON_CN12, NEW_DEFAULT = "fixed_dt0.0833_cn", "coreneuron_fixed_dt0.0833_cn"
PORTABLE = "coreneuron_portable_fixed_dt0.0833_cn"
#: Candidates, cheapest last. Fixed steps are 1/n ms (the simulator's rule: 1 ms bins fall on steps).
CANDIDATES = {
    "cvode_atol1e-3": SimConfig(method="cvode", cvode_atol=1e-3),
    "cvode_atol1e-2": SimConfig(method="cvode", cvode_atol=1e-2),
    "fixed_dt0.025_cn": SimConfig(dt_ms=0.025, secondorder=2),
    "fixed_dt0.05_be": SimConfig(dt_ms=0.05, secondorder=0),
    "fixed_dt0.05_cn": SimConfig(dt_ms=0.05, secondorder=2),
    "fixed_dt0.0625_be": SimConfig(dt_ms=0.0625, secondorder=0),
    "fixed_dt0.0625_cn": SimConfig(dt_ms=0.0625, secondorder=2),
    "fixed_dt0.0833_be": SimConfig(dt_ms=1 / 12, secondorder=0),
    NEURON_CN12: SimConfig(**CN12),
    "fixed_dt0.1_be": SimConfig(dt_ms=0.1, secondorder=0),
    "fixed_dt0.1_cn": SimConfig(dt_ms=0.1, secondorder=2),
    "fixed_dt0.125_be": SimConfig(dt_ms=0.125, secondorder=0),
    "fixed_dt0.125_cn": SimConfig(dt_ms=0.125, secondorder=2),
    NEW_DEFAULT: SimConfig(**CN12, engine="coreneuron"),
    PORTABLE: SimConfig(**CN12, engine="coreneuron"),
}
#: Environment of the worker per setting (the portable build is asked for through the environment).
SETTING_ENV = {PORTABLE: {flags.PORTABLE_ENV: "1"}}
QUICK = {"seeds": [3, 12, 2], "settings": [NEURON_CN12, NEW_DEFAULT, PORTABLE]}
SAME_DT_BOUNDS = {"max_rmse_mV": 0.05, "max_spike_shift_ms": 0.1}


@contextmanager
def environment(values: dict[str, str]):
    """``os.environ`` with ``values`` set inside the block (spawned workers inherit it), restored after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_setting(cell: CellConfig, config: SimConfig, inputs: list, duration_ms: int, env: dict) -> dict:
    """All ``inputs`` with ``config`` in a fresh process: results joined end to end (1 ms soma, spike times
    shifted by k·duration_ms for input k), per-input 8 kHz traces and spikes, CPU and wall seconds, engine."""
    with environment(env):
        run = run_isolated(cell, config, inputs, duration_ms)
    return {"soma": np.concatenate([r.soma_mV for r in run.results]),
            "spikes": np.concatenate([r.spike_times_ms + k * duration_ms for k, r in enumerate(run.results)]),
            "hires": [r.soma_hires_mV.astype(np.float64) for r in run.results],
            "spike_lists": [r.spike_times_ms for r in run.results],
            "cpu_s": run.cpu_s, "wall_s": run.wall_s, "engine": run.engine}


def same_dt(reference: dict, test: dict) -> dict:
    """The engine bounds' quantities of ``test`` against ``reference`` (same dt): max RMSE (mV) of the 8 kHz
    somatic traces over inputs, identical spike counts, max spike-time shift (ms)."""
    rmse = max(float(np.sqrt(np.mean((a - b) ** 2))) for a, b in zip(reference["hires"], test["hires"]))
    counts = all(len(a) == len(b) for a, b in zip(reference["spike_lists"], test["spike_lists"]))
    shift = max((float(np.abs(a - b).max()) for a, b in zip(reference["spike_lists"], test["spike_lists"])
                 if counts and len(a)), default=0.0)
    identical = counts and shift <= SAME_DT_BOUNDS["max_spike_shift_ms"]
    return {"rmse_mV": rmse, "spike_counts_identical": counts, "max_spike_shift_ms": shift,
            "spikes_identical": identical, "meets": identical and rmse <= SAME_DT_BOUNDS["max_rmse_mV"]}


def fidelity(cell: CellConfig, config: SimConfig, env: dict, pickle_path: Path) -> dict:
    """``config`` on the original pickle's inputs against the original model's soma traces (pooled RMSE over
    all samples, spike counts summed)."""
    with open(pickle_path, "rb") as handle:
        original = pickle.load(handle, encoding="latin1")["Results"]["listOfSingleSimulationDicts"]
    inputs = read_inputs(pickle_path)
    with environment(env):
        run = run_isolated(cell, config, inputs.spike_times, inputs.duration_ms)
    ref_v, test_v, totals = [], [], {"n_ref": 0, "n_test": 0, "matched": 0}
    for result, sim_dict in zip(run.results, original):
        ref = sim_dict["somaVoltageLowRes"].astype(np.float64)[:inputs.duration_ms]
        one = compare_traces(ref, result.soma_mV[:ref.size], sim_dict["outputSpikeTimes"].astype(np.float64),
                             result.spike_times_ms)
        for key in totals:
            totals[key] += one[key]
        ref_v.append(ref)
        test_v.append(result.soma_mV[:ref.size])
    pooled = compare_traces(np.concatenate(ref_v), np.concatenate(test_v), [], [])
    return {"n_sims": len(original), "duration_ms": inputs.duration_ms, "rmse_mV": pooled["rmse_mV"], **totals,
            "matched_fraction": totals["matched"] / max(totals["n_ref"], 1),
            "spurious": totals["n_test"] - totals["matched"],
            "spurious_fraction": (totals["n_test"] - totals["matched"]) / max(totals["n_ref"], 1)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"seeds {QUICK['seeds']}, settings "
                        f"{QUICK['settings']} on cell1 (unless --morphology is given)")
    parser.add_argument("--morphology", default=None, help="\"cell1\", \"synthetic\" or a .asc/.swc path (default: CellConfig's, \"synthetic\"; cell1 with --quick)")
    parser.add_argument("--duration-ms", type=int, default=1500)
    # Twelve 1.5 s draws make ~17 output spikes on cell1 (a typical draw makes 0–2; seeds 3, 12 and 2 make the
    # most): enough that one missed or extra spike moves the match by 6 %.
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 13)),
                        help="seeds of the drawn NeuronIO inputs")
    parser.add_argument("--max-rmse-mv", type=float, default=0.5)
    parser.add_argument("--min-matched", type=float, default=0.95)
    # Spurious spikes (no baseline spike within ±2 ms), as a fraction of the baseline's: a setting that adds
    # spikes changes the dataset as much as one that drops them.
    parser.add_argument("--max-spurious", type=float, default=0.05)
    parser.add_argument("--settings", nargs="+", choices=sorted(CANDIDATES), default=sorted(CANDIDATES),
                        help="candidates to run (default: all; the baseline always runs)")
    parser.add_argument("--flag-sets", nargs="+", default=[], metavar="NAME=FLAGS",
                        help="also run CoreNEURON at CN dt 1/12 ms with mechanisms compiled with FLAGS (each set "
                             "compiles once into the cache)")
    parser.add_argument("--reference", type=Path, default=REFERENCE_PICKLE)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.settings = QUICK["seeds"], QUICK["settings"]
        args.morphology = args.morphology or (str(CELL1) if CELL1.is_file() else "cell1")
    return args


def main() -> None:
    args = parse_args()
    cell = CellConfig(morphology=args.morphology)
    configs = {BASELINE_NAME: BASELINE, **{name: CANDIDATES[name] for name in CANDIDATES if name in args.settings}}
    envs = {name: SETTING_ENV.get(name, {}) for name in configs}
    for spec in args.flag_sets:
        name, _, value = spec.partition("=")
        configs[f"coreneuron_flags_{name}"] = CANDIDATES[NEW_DEFAULT]
        envs[f"coreneuron_flags_{name}"] = {flags.FLAGS_ENV: value}
    with CellSimulator(cell, BASELINE) as sim:
        segments = sim.synapses[sim.synapses["kind"] == "exc"]
        draws = [draw_inputs(InputConfig(), segments, args.duration_ms, np.random.default_rng(seed))
                 for seed in args.seeds]
        morphology, n_synapses = sim.provenance()["morphology"], sim.n_synapses
    inputs = [[np.flatnonzero(row).astype(np.float64) for row in spikes] for spikes in draws]
    seconds = len(args.seeds) * args.duration_ms / 1000.0
    input_rate_hz = sum(int(s.sum()) for s in draws) / n_synapses / seconds
    print(f"input: {input_rate_hz:.1f} Hz per synapse", file=sys.stderr)

    runs, rows = {}, {}
    for name, config in configs.items():
        runs[name] = run = run_setting(cell, config, inputs, args.duration_ms, envs[name])
        base = runs[BASELINE_NAME]
        rows[name] = {"sim": dataclasses.asdict(config), "env": envs[name], "engine": run["engine"],
                      "cpu_s": run["cpu_s"], "wall_s": run["wall_s"], "sim_s_per_cpu_s": seconds / run["cpu_s"],
                      "sim_s_per_wall_s": seconds / run["wall_s"], "speedup": base["cpu_s"] / run["cpu_s"],
                      **compare_traces(base["soma"], run["soma"], base["spikes"], run["spikes"])}
        print(f"{name}: {run['cpu_s']:.2f} CPU-s ({run['engine']}), RMSE {rows[name]['rmse_mV']:.3f} mV, matched "
              f"{rows[name]['matched']}/{rows[name]['n_ref']}, spurious {rows[name]['spurious']}", file=sys.stderr)
    for name, config in configs.items():
        twin = next((other for other, c in configs.items() if c.engine == "neuron" and c.method == "fixed"
                     and c.dt_ms == config.dt_ms and c.secondorder == config.secondorder), None)
        if config.engine == "coreneuron" and twin is not None:
            rows[name]["same_dt_vs"] = twin
            rows[name]["same_dt"] = same_dt(runs[twin], runs[name])
            rows[name]["speedup_vs_same_dt_neuron"] = runs[twin]["cpu_s"] / runs[name]["cpu_s"]

    def meets(row: dict) -> bool:
        return (row["rmse_mV"] <= args.max_rmse_mv and row["matched_fraction"] >= args.min_matched
                and row["spurious_fraction"] <= args.max_spurious)

    accurate = sorted((name for name, row in rows.items() if meets(row) and row.get("same_dt", {}).get("meets", True)),
                      key=lambda name: rows[name]["sim_s_per_cpu_s"], reverse=True)
    fidelities, chosen = {}, accurate[0] if accurate else BASELINE_NAME
    if args.reference.is_file():
        for name in [BASELINE_NAME] + [name for name in accurate if name != BASELINE_NAME]:
            fidelities[name] = fidelity(cell, configs[name], envs[name], args.reference)
            print(f"{name} vs original: {fidelities[name]}", file=sys.stderr)
            if name != BASELINE_NAME and meets(fidelities[name]):
                chosen = name
                break
    engine_rows = [row["same_dt"] for row in rows.values() if "same_dt" in row]
    out = {"benchmark": "sim_speed", "quick": args.quick, "commit": git_commit(), "morphology": morphology,
           "n_synapses": n_synapses, "duration_ms": args.duration_ms, "seeds": args.seeds,
           "input_rate_hz": input_rate_hz, "baseline_output_spikes": len(runs[BASELINE_NAME]["spikes"]),
           "load_average_1_5_15": list(os.getloadavg()), "cpu_identity": flags.cpu_identity(),
           "tuned_flags": flags.TUNED_FLAGS, "portable_flags": flags.PORTABLE_FLAGS,
           "criteria": {"max_rmse_mV": args.max_rmse_mv, "min_matched": args.min_matched,
                        "max_spurious": args.max_spurious, "clip_mV": -55.0, "window_ms": 2.0,
                        "same_dt": SAME_DT_BOUNDS},
           "speedup_vs_neuron_cn12": (runs[NEURON_CN12]["cpu_s"] / runs[NEW_DEFAULT]["cpu_s"]
                                      if {NEURON_CN12, NEW_DEFAULT} <= set(runs) else None),
           "max_rmse_same_dt_mV": max((r["rmse_mV"] for r in engine_rows), default=None),
           "spikes_identical": all(r["spikes_identical"] for r in engine_rows) if engine_rows else None,
           "settings": rows, "chosen": chosen, "chosen_speedup": rows[chosen]["speedup"],
           "fidelity_vs_original": fidelities}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
