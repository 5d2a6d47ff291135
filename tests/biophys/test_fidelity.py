"""Our L5PC on cell1.asc against the original Hay et al. (2011) model's reference traces (the
project's test data, reference_traces/).

Two end-to-end checks, about 85 CPU-s together: the ``simulate`` command on the original NeuronIO pickle
(2 × 1.5 s of NMDA-synapse input, run in a subprocess exactly as a user would) and all three somatic current
steps through :class:`~biophys.simulator.CellSimulator`. The tolerances are the L5PC targets (somatic RMSE,
spike matching, spike times, rest); the reference itself is float16, so they cannot be much tighter.
"""

import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conventions.spikes import match_spikes as count_coincidences
from biophys.dataset import NeuronIOStore

pytestmark = [pytest.mark.neuron, pytest.mark.slow]

CLIP_MV = -55.0            # spikes are clipped off before the voltage RMSE (as in the surrogate metrics)
MAX_RMSE_MV = 0.5
SPIKE_WINDOW_MS = 2.0
MIN_MATCHED = 0.95         # of the reference's output spikes
MAX_SPURIOUS = 0.05        # of the reference's output spike count
STEP_AMPS_NA = (0.5, 0.8, 1.0)
STEP_DELAY_MS, STEP_DUR_MS, STEP_TOTAL_MS = 300.0, 1000.0, 1500
HIRES_PER_MS = 8           # the step references are sampled at 8 kHz

#: ``python -m biophys`` assembles the subcommands of several modules; until all of them exist, the test drives
#: the ``simulate`` subcommand through a parser holding only biophys.cli.simulate's CLI — the same handler.
SIMULATE_ONLY = textwrap.dedent("""
    import argparse, sys
    from biophys.cli import simulate
    parser = argparse.ArgumentParser(prog="simulate-only")
    simulate.register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(sys.argv[1:])
    sys.exit(args.func(args))
""")


def biophys_cli() -> list[str]:
    """The command prefix that runs ``python -m biophys`` (or its simulate handler alone, see SIMULATE_ONLY)."""
    from biophys.__main__ import COMMAND_MODULES

    if all(importlib.util.find_spec(name) is not None for name in COMMAND_MODULES):
        return [sys.executable, "-m", "biophys"]
    return [sys.executable, "-c", SIMULATE_ONLY]


@pytest.fixture(scope="module")
def reference_neuronio(shared_data):
    """The original pickle's simulations (list of dicts; layout in biophys.neuronio_format)."""
    with open(shared_data / "reference_traces" / "original_l5pc_neuronio_seed77.p", "rb") as handle:
        return pickle.load(handle, encoding="latin1")["Results"]["listOfSingleSimulationDicts"]


def test_simulate_cli_reproduces_original_neuronio(shared_data, reference_neuronio, tmp_path):
    out = tmp_path / "sim.zarr"
    command = biophys_cli() + [
        "simulate", "--inputs", str(shared_data / "reference_traces" / "original_l5pc_neuronio_seed77.p"),
        "--out", str(out), "--morphology", str(shared_data / "morphologies" / "cell1.asc")]
    # The subprocess starts in tmp_path so that no compiled x86_64/ folder of a checkout is picked up.
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=_env_with_repo_on_path())
    assert done.returncode == 0, f"simulate failed:\n{done.stdout}\n{done.stderr}"
    store = NeuronIOStore(out).load()
    assert store.n_sims == len(reference_neuronio) and store.n_time == 1500 and store.n_synapses == 1278

    truth = np.stack([np.minimum(sim["somaVoltageLowRes"].astype(np.float64), CLIP_MV) for sim in reference_neuronio])
    ours = np.stack([np.minimum(store.soma_voltage(i).astype(np.float64), CLIP_MV) for i in range(store.n_sims)])
    rmse = float(np.sqrt(np.mean((ours - truth) ** 2)))
    assert rmse < MAX_RMSE_MV, f"somatic RMSE {rmse:.3f} mV"

    ref_spikes = [sim["outputSpikeTimes"].astype(np.float64) for sim in reference_neuronio]
    our_spikes = [store.spike_times(i) for i in range(store.n_sims)]
    n_ref = sum(len(t) for t in ref_spikes)
    n_ours = sum(len(t) for t in our_spikes)
    matched = sum(count_coincidences(r, o, SPIKE_WINDOW_MS) for r, o in zip(ref_spikes, our_spikes))
    assert n_ref >= 1, "the reference should contain output spikes"
    assert matched >= MIN_MATCHED * n_ref, f"matched {matched} of {n_ref} reference spikes: {ref_spikes} vs {our_spikes}"
    assert n_ours - matched <= MAX_SPURIOUS * n_ref, f"{n_ours - matched} spurious spikes: {our_spikes} vs {ref_spikes}"


def _env_with_repo_on_path() -> dict:
    """This process's environment with the checkout first on PYTHONPATH (also without an editable install)."""
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def cell1(shared_data):
    """The full cell on cell1.asc, built once for the current steps and closed at the end of the module."""
    from biophys.config import CellConfig, SimConfig
    from biophys.simulator import CellSimulator

    sim = CellSimulator(CellConfig(morphology=str(shared_data / "morphologies" / "cell1.asc")), SimConfig())
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def reference_steps(shared_data):
    return dict(np.load(shared_data / "reference_traces" / "original_l5pc_step_currents.npz"))


@pytest.mark.parametrize("amp_nA", STEP_AMPS_NA)
def test_current_step_matches_original(cell1, reference_steps, amp_nA):
    from biophys.stimuli import CurrentStep

    silent = [np.zeros(0)] * cell1.n_synapses
    result = cell1.run_spike_times(silent, STEP_TOTAL_MS, [CurrentStep(amp_nA, STEP_DELAY_MS, STEP_DUR_MS)])

    expected = reference_steps[f"amp_{amp_nA}_spike_times_ms"]
    assert len(result.spike_times_ms) == len(expected), f"{result.spike_times_ms} vs {expected}"
    np.testing.assert_allclose(result.spike_times_ms, expected, atol=0.5)

    # Rest: the whole stretch before the step, where the cell relaxes from v_init to its resting potential.
    before_step = int(STEP_DELAY_MS) * HIRES_PER_MS
    reference_soma = reference_steps[f"amp_{amp_nA}_soma_mV"]
    np.testing.assert_allclose(result.soma_hires_mV[:before_step], reference_soma[:before_step], atol=0.5)
