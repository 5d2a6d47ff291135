"""``python -m biophys simulate``: one-line errors for bad inputs, a store's own settings, no DISPLAY warning."""

import dataclasses
import gzip
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from biophys import dataset
from biophys.config import CellConfig, SimConfig
from test_cli_errors import assert_clean_failure, run

BALL = CellConfig(name="ball-and-stick")


def simulate(*args, cwd):
    return run("biophys", "simulate", *args, cwd=cwd)


@pytest.mark.parametrize("name", ["missing.p", "empty_dir", "list.p", "text.p.gz", "notes.txt"])
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, name):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "list.p").write_bytes(pickle.dumps([1, 2, 3]))
    (tmp_path / "text.p.gz").write_bytes(gzip.compress(b"just some text\n"))
    (tmp_path / "notes.txt").write_text("just some text\n")
    proc = simulate("--inputs", str(tmp_path / name), "--out", str(tmp_path / "out.zarr"), "--cell",
                    "ball-and-stick", cwd=tmp_path)
    assert_clean_failure(proc, name)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out.zarr").exists()


def ball_and_stick_store(path, sim_config: SimConfig, n_time: int = 120):
    """A store of two ball-and-stick simulations made with ``sim_config``, as ``generate`` records it."""
    from biophys.simulator import CellSimulator

    rng = np.random.default_rng(7)
    spikes = (rng.random((2, n_time, 54)) < 0.04).astype(np.uint8)
    with CellSimulator(BALL, sim_config) as sim:
        results = [sim.run(spikes[i].T, n_time) for i in range(2)]
        table = sim.synapses
    config = {"cell": dataclasses.asdict(BALL), "sim": dataclasses.asdict(sim_config), "duration_ms": n_time}
    ds = dataset.build_dataset(spikes, np.stack([r.soma_mV for r in results]), [r.spike_times_ms for r in results],
                               [1, 2], table, config, {})
    dataset.write_store(ds, path)
    return results


@pytest.mark.neuron
def test_store_is_simulated_with_its_recorded_settings_and_prints_no_display_warning(tmp_path):
    recorded = SimConfig(dt_ms=1 / 12, secondorder=2)
    results = ball_and_stick_store(tmp_path / "in.zarr", recorded)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "NEURON_MODULE_OPTIONS")}
    proc = subprocess.run([sys.executable, "-m", "biophys", "simulate", "--inputs", str(tmp_path / "in.zarr"),
                           "--out", str(tmp_path / "out.zarr")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "DISPLAY" not in proc.stdout + proc.stderr
    out = dataset.NeuronIOStore(tmp_path / "out.zarr")
    assert out.config["cell"]["name"] == "ball-and-stick"
    assert out.config["sim"] == dataclasses.asdict(recorded)
    for i, result in enumerate(results):
        np.testing.assert_array_equal(out.soma_voltage(i), result.soma_mV)
    # An explicit option overrides the recorded setting: backward Euler gives a (slightly) different trace.
    proc = simulate("--inputs", str(tmp_path / "in.zarr"), "--out", str(tmp_path / "euler.zarr"),
                    "--secondorder", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    euler = dataset.NeuronIOStore(tmp_path / "euler.zarr")
    assert euler.config["sim"]["secondorder"] == 0 and euler.config["sim"]["dt_ms"] == recorded.dt_ms
    assert not np.array_equal(euler.soma_voltage(0), results[0].soma_mV)


@pytest.mark.neuron
def test_simulate_reproduces_a_generated_store(tmp_path):
    """A ball-and-stick store made by ``generate`` (Crank–Nicolson at the dataset dt) re-simulates to the same
    voltages and spikes; neither command's output carries NEURON's DISPLAY warning."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "NEURON_MODULE_OPTIONS")}
    commands = (["generate", "--cell", "ball-and-stick", "--workers", "1", "--no-progress", "--out", "in.zarr",
                 "--n-sims", "2", "--duration-ms", "200"],
                ["simulate", "--inputs", "in.zarr", "--out", "out.zarr"])
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "biophys", *command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "DISPLAY" not in proc.stdout + proc.stderr
    made, redone = dataset.NeuronIOStore(tmp_path / "in.zarr"), dataset.NeuronIOStore(tmp_path / "out.zarr")
    assert redone.config["sim"] == made.config["sim"]
    for i in range(made.n_sims):
        np.testing.assert_array_equal(redone.soma_voltage(i), made.soma_voltage(i))
        np.testing.assert_array_equal(redone.spike_times(i), made.spike_times(i))
