"""The CoreNEURON engine against NEURON's (same model, same dt, each in a fresh process), its fallback to NEURON,
and the key of its mechanism build (flags and CPU identity)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from biophys.config import CellConfig, SimConfig
from biophys.isolated import run_isolated
from biophys.mechanisms import build, flags

REPO = Path(__file__).resolve().parents[2]
BALL = CellConfig(name="ball-and-stick")
SAME_DT = {"dt_ms": 1 / 12, "secondorder": 2}
MAX_RMSE_MV = 0.05          # the same-dt bounds of CoreNEURON against NEURON
MAX_SPIKE_SHIFT_MS = 0.1


def assert_same_dynamics(reference, test):
    """RMSE ≤ 0.05 mV on the 8 kHz somatic trace, identical spike counts, spike times within 0.1 ms."""
    rmse = np.sqrt(np.mean((reference.soma_hires_mV.astype(np.float64) - test.soma_hires_mV) ** 2))
    assert rmse <= MAX_RMSE_MV
    assert len(test.spike_times_ms) == len(reference.spike_times_ms)
    np.testing.assert_allclose(test.spike_times_ms, reference.spike_times_ms, atol=MAX_SPIKE_SHIFT_MS)


def test_engine_is_checked_by_key():
    assert SimConfig().engine == "neuron"
    with pytest.raises(ValueError, match="SimConfig.engine must be one of"):
        SimConfig(engine="gpu")
    with pytest.raises(ValueError, match="SimConfig.engine"):
        SimConfig.from_dict({"engine": 1})


def test_build_key_holds_flags_and_cpu(monkeypatch):
    tuned = build.coreneuron_hash(flags=flags.TUNED_FLAGS)
    portable = build.coreneuron_hash(flags=flags.PORTABLE_FLAGS)
    neuron_key = build.mechanism_hash()
    assert len({tuned, portable, neuron_key}) == 3
    monkeypatch.setattr(flags, "cpu_identity", lambda: "x86_64-another-cpu")
    assert build.coreneuron_hash(flags=flags.TUNED_FLAGS) != tuned      # a tuned build is tied to its CPU
    assert build.coreneuron_hash(flags=flags.PORTABLE_FLAGS) == portable
    assert build.mechanism_hash() == neuron_key                          # NEURON's own build is untouched


def test_portable_flags_when_asked(monkeypatch):
    monkeypatch.delenv(flags.PORTABLE_ENV, raising=False)
    assert flags.coreneuron_flags() == flags.TUNED_FLAGS and flags.cpu_specific(flags.TUNED_FLAGS)
    monkeypatch.setenv(flags.PORTABLE_ENV, "1")
    assert flags.coreneuron_flags() == flags.PORTABLE_FLAGS and not flags.cpu_specific(flags.PORTABLE_FLAGS)


def test_flags_keep_nan_and_infinity_semantics():
    """The vectorised maths comes without -ffast-math's assumption that NaN and infinity never occur, and sums
    keep their order; divisions may become multiplications by reciprocals."""
    for chosen in (flags.TUNED_FLAGS, flags.PORTABLE_FLAGS):
        assert {"-fno-math-errno", "-freciprocal-math"} <= set(chosen.split())
        assert not {"-ffast-math", "-ffinite-math-only", "-fassociative-math", "-Ofast"} & set(chosen.split())


def test_wide_vectors_only_in_the_tuned_x86_build():
    wide = "-mprefer-vector-width=512"
    assert wide not in flags.PORTABLE_FLAGS.split()
    assert (wide in flags.TUNED_FLAGS.split()) == (__import__("platform").machine() in ("x86_64", "AMD64"))


def test_cpu_identity_names_the_machine_and_is_stable():
    identity = flags.cpu_identity()
    assert identity.startswith(__import__("platform").machine() + "-") and len(identity.split("-")[-1]) == 16
    flags.cpu_identity.cache_clear()
    assert flags.cpu_identity() == identity


@pytest.mark.neuron
def test_coreneuron_build_holds_both_libraries():
    directory = build.compile_coreneuron()
    assert directory.name == build.coreneuron_hash()
    assert build.find_library(directory) is not None
    assert build.find_library(directory, "libcorenrnmech") == build.use_coreneuron()


def _ball_inputs(seed: int, n_time: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.r_[np.full(27, 0.08), np.full(27, 0.01)][:, None]
    counts = (rng.random((54, n_time)) < p).astype(np.uint8)
    counts[3, 0] = 1  # an event at t = 0 is delivered by both engines
    return [np.flatnonzero(row).astype(np.float64) for row in counts]


@pytest.mark.neuron
def test_coreneuron_matches_neuron_on_ball_and_stick():
    inputs = [_ball_inputs(seed, 300) for seed in (1, 2)]
    runs = {engine: run_isolated(BALL, SimConfig(**SAME_DT, engine=engine, record_dendrites=True), inputs, 300)
            for engine in ("neuron", "coreneuron")}
    assert runs["coreneuron"].engine == "coreneuron" and runs["neuron"].engine == "neuron"
    assert sum(len(r.spike_times_ms) for r in runs["neuron"].results) >= 1
    for reference, test in zip(runs["neuron"].results, runs["coreneuron"].results):
        assert_same_dynamics(reference, test)
        assert test.nexus_mV.shape == reference.nexus_mV.shape == (300,)
        np.testing.assert_allclose(test.nexus_mV, reference.nexus_mV, atol=0.05)
        assert test.dend_mV.shape == reference.dend_mV.shape == (300, 27)
        np.testing.assert_allclose(test.dend_mV.astype(np.float32), reference.dend_mV.astype(np.float32), atol=0.1)


FALLBACK_SCRIPT = textwrap.dedent("""
    import numpy as np
    from biophys.config import CellConfig, SimConfig
    from biophys.simulator import CellSimulator

    counts = (np.random.default_rng(3).random((54, 120)) < 0.03).astype(np.uint8)
    with CellSimulator(CellConfig(name="ball-and-stick"), SimConfig(method="cvode", engine="coreneuron")) as sim:
        for _ in range(2):
            result = sim.run(counts, 120)
        print(sim.provenance()["engine"], result.soma_mV.shape[0])
""")


@pytest.mark.neuron
def test_cvode_falls_back_to_neuron_in_one_line():
    done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["neuron", "120"]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["CoreNEURON cannot run here (it integrates with fixed steps only, method = 'cvode'); "
                     "simulating with NEURON"]


@pytest.mark.neuron
@pytest.mark.slow
def test_coreneuron_matches_neuron_on_cell1(shared_data):
    """600 ms of NeuronIO input on cell1 (seed 3 makes an output spike)."""
    from biophys.inputs import InputConfig, draw_inputs
    from biophys.simulator import CellSimulator

    cell = CellConfig(morphology=str(shared_data / "morphologies" / "cell1.asc"))
    with CellSimulator(cell) as sim:
        excitatory = sim.synapses[sim.synapses["kind"] == "exc"]
        counts = draw_inputs(InputConfig(), excitatory, 600, np.random.default_rng(3))
    inputs = [[np.flatnonzero(row).astype(np.float64) for row in counts]]
    reference, test = (run_isolated(cell, SimConfig(**SAME_DT, engine=engine), inputs, 600).results[0]
                       for engine in ("neuron", "coreneuron"))
    assert len(reference.spike_times_ms) >= 1
    assert_same_dynamics(reference, test)


@pytest.mark.neuron
def test_simulate_and_validate_take_an_engine(tmp_path):
    """``simulate --engine coreneuron`` records the engine in the store and matches NEURON's traces; a store made
    with CoreNEURON re-simulates bit for bit with its recorded engine; ``validate --engine`` runs protocols."""
    from biophys import dataset
    from test_simulate_cli import ball_and_stick_store, simulate

    # The reference settings: this process's NEURON keeps the last run's dt and secondorder, which later tests
    # of the mechanisms assume to be NEURON's defaults.
    results = ball_and_stick_store(tmp_path / "in.zarr", SimConfig())
    proc = simulate("--inputs", str(tmp_path / "in.zarr"), "--out", str(tmp_path / "cn.zarr"), "--engine",
                    "coreneuron", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    made = dataset.NeuronIOStore(tmp_path / "cn.zarr")
    assert made.config["sim"]["engine"] == "coreneuron"
    for i, result in enumerate(results):
        np.testing.assert_allclose(made.soma_voltage(i), result.soma_mV, atol=MAX_RMSE_MV)
    proc = simulate("--inputs", str(tmp_path / "cn.zarr"), "--out", str(tmp_path / "again.zarr"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = dataset.NeuronIOStore(tmp_path / "again.zarr")
    assert again.config["sim"] == made.config["sim"]
    for i in range(made.n_sims):
        np.testing.assert_array_equal(again.soma_voltage(i), made.soma_voltage(i))

    validated = {}
    for engine in ("neuron", "coreneuron"):
        out = tmp_path / f"{engine}.json"
        done = subprocess.run([sys.executable, "-m", "biophys", "validate", "--cell", "ball-and-stick", "--protocols",
                               "rest", "bap", "--engine", engine, "--json", str(out)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        validated[engine] = json.loads(out.read_text())
        assert validated[engine]["provenance"]["engine"] == engine
    for name, value in validated["neuron"]["rest"].items():
        assert validated["coreneuron"]["rest"][name] == pytest.approx(value, abs=0.05)
    assert validated["coreneuron"]["checks"] == validated["neuron"]["checks"]
