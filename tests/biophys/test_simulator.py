"""CellSimulator on the ball-and-stick cell: build, run, spikes, t = 0 events, teardown and rebuild."""


import numpy as np
import pytest

from biophys import inputs, recordings
from biophys.cli import simulate as simulate_cli
from biophys.config import CellConfig, SimConfig
from biophys.simulator import CellSimulator, SimulationError
from conventions.signals import HIRES_DT_MS

pytestmark = pytest.mark.neuron

BALL = CellConfig(name="ball-and-stick")


def random_input(n_synapses: int, n_time: int, seed: int, p_exc: float = 0.03, p_inh: float = 0.01):
    rng = np.random.default_rng(seed)
    half = n_synapses // 2
    p = np.r_[np.full(half, p_exc), np.full(half, p_inh)][:, None]
    return (rng.random((n_synapses, n_time)) < p).astype(np.uint8)


def test_ball_and_stick_runs_and_spikes():
    with CellSimulator(BALL, SimConfig()) as sim:
        assert sim.n_synapses == 54 == len(sim.synapses)
        table = sim.synapses
        assert table["kind"].tolist() == ["exc"] * 27 + ["inh"] * 27
        assert table["segment"].iloc[:27].tolist() == table["segment"].iloc[27:].tolist()
        assert table["tree"].iloc[:27].tolist() == ["basal"] * 10 + ["apical"] * 17
        result = sim.run(random_input(sim.n_synapses, 200, seed=1, p_exc=0.06), 200)
    assert result.soma_mV.shape == (200,) and result.soma_mV.dtype == np.float32
    assert result.nexus_mV.shape == (200,)
    assert result.soma_mV[0] == pytest.approx(-76.0)
    assert len(result.spike_times_ms) >= 1
    for t in result.spike_times_ms:
        i = int(round(t / HIRES_DT_MS))
        assert result.soma_hires_mV[i] > -25.0
        assert result.soma_hires_mV[i] >= result.soma_hires_mV[i - 1]


def test_teardown_leaves_no_sections_and_rebuild_gives_same_result():
    from neuron import h

    spikes = random_input(54, 150, seed=2)
    with CellSimulator(BALL, SimConfig()) as sim:
        first = sim.run(spikes, 150)
    assert len(list(h.allsec())) == 0
    with CellSimulator(BALL, SimConfig()) as sim:
        second = sim.run(spikes, 150)
    assert len(list(h.allsec())) == 0
    np.testing.assert_array_equal(first.soma_mV, second.soma_mV)


def test_second_open_simulator_is_refused():
    with CellSimulator(BALL, SimConfig()):
        with pytest.raises(SimulationError, match="already open"):
            CellSimulator(BALL, SimConfig())


def test_spike_at_t0_is_delivered_like_any_other():
    """One excitatory event at t = 0 gives the EPSP of one at t = 20 ms, shifted by 20 ms (within a few %:
    the cell relaxes from v_init = −76 mV towards rest during the first ms, so driving forces differ)."""
    with CellSimulator(BALL, SimConfig()) as sim:
        rest = sim.run(np.zeros((54, 80), np.uint8), 80).soma_hires_mV
        at0 = [np.array([0.0]) if i == 3 else np.zeros(0) for i in range(54)]  # excitatory, basal
        late = [np.array([20.0]) if i == 3 else np.zeros(0) for i in range(54)]
        early_v = sim.run_spike_times(at0, 80).soma_hires_mV
        late_v = sim.run_spike_times(late, 80).soma_hires_mV
    shift = int(20 / HIRES_DT_MS)
    epsp0 = early_v[:-shift] - rest[:-shift]
    epsp20 = late_v[shift:] - rest[shift:]
    assert epsp0.max() > 0.05  # a visible EPSP (mV)
    assert epsp0[2] > 0.01  # already rising 0.25 ms after t = 0
    np.testing.assert_allclose(epsp0[: 40 * 8], epsp20[: 40 * 8], rtol=0.06, atol=2e-3)


def test_counts_give_multiple_events():
    """A bin holding 2 spikes gives the EPSP of two simultaneous events (larger than one)."""
    with CellSimulator(BALL, SimConfig()) as sim:
        one = np.zeros((54, 50), np.uint8)
        one[0, 5] = 1
        two = one * 2
        rest = sim.run(np.zeros((54, 50), np.uint8), 50).soma_mV
        peak1 = (sim.run(one, 50).soma_mV - rest).max()
        peak2 = (sim.run(two, 50).soma_mV - rest).max()
    assert peak2 > 1.5 * peak1 > 0


def test_dendritic_recording_and_cvode():
    cfg = SimConfig(method="cvode", record_dendrites=True)
    spikes = random_input(54, 120, seed=3)
    with CellSimulator(BALL, cfg) as sim:
        result = sim.run(spikes, 120)
        provenance = sim.provenance()
    assert result.dend_mV.shape == (120, 27) and result.dend_mV.dtype == np.float16
    assert provenance["sim"]["method"] == "cvode"
    assert provenance["n_synapses"] == 54 and provenance["morphology"]["kind"] == "ball-and-stick"
    with CellSimulator(BALL, SimConfig()) as sim:
        fixed = sim.run(spikes, 120)
    # Both integrators see the same input; the somatic traces agree to within a few mV outside spikes.
    assert np.median(np.abs(fixed.soma_mV - result.soma_mV)) < 1.0


def test_step_that_does_not_divide_the_grid_is_interpolated():
    """dt = 0.1 ms does not divide the 0.125 ms somatic grid: the grid is interpolated between steps, so the
    trace keeps its length and stays close to a fine-step run of the same input."""
    rng = np.random.default_rng(5)
    spikes = (rng.random((54, 120)) < 0.03).astype(np.uint8)
    with CellSimulator(BALL, SimConfig(dt_ms=0.025)) as sim:
        fine = sim.run(spikes, 120)
        sim.sim = SimConfig(dt_ms=0.1)
        coarse = sim.run(spikes, 120)
    assert coarse.soma_hires_mV.shape == fine.soma_hires_mV.shape == (960,)
    assert coarse.soma_mV.shape == (120,)
    # NEURON's own 0.125 ms recording would hold a neighbouring step's value (errors of several mV on a rising
    # EPSP); the interpolated grid follows the fine run closely.
    assert np.abs(coarse.soma_hires_mV - fine.soma_hires_mV).max() < 1.0
    assert np.std(fine.soma_hires_mV) > 0.5


def test_bad_inputs_raise():
    with CellSimulator(BALL, SimConfig()) as sim:
        with pytest.raises(ValueError, match="n_synapses"):
            sim.run(np.zeros((3, 10), np.uint8), 10)
        with pytest.raises(ValueError, match="lie in"):
            sim.run_spike_times([np.array([12.0])] * 54, 10)
    with pytest.raises(ValueError, match="1/n ms"):
        SimConfig(dt_ms=0.03)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \[\'dt\'\] in SimConfig"):
        SimConfig.from_dict({"dt": 0.1})


def test_detect_spikes_on_reference_traces(shared_data):
    """The detector reproduces the original model's spike times from its own 8 kHz traces."""
    ref = np.load(shared_data / "reference_traces" / "original_l5pc_step_currents.npz")
    t = ref["t_ms"]
    dt = float(t[1] - t[0])
    for amp in ("0.5", "0.8", "1.0"):
        found = recordings.detect_spikes(ref[f"amp_{amp}_soma_mV"], dt, -25.0) + t[0]
        np.testing.assert_allclose(found, ref[f"amp_{amp}_spike_times_ms"], atol=1e-9)


def test_spike_matrix_to_times():
    counts = np.array([[0, 1, 0, 2], [0, 0, 0, 0], [1, 0, 0, 0]], np.uint8)
    times = inputs.spike_matrix_to_times(counts)
    assert [t.tolist() for t in times] == [[1.0, 3.0, 3.0], [], [0.0]]


def _cli(argv):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    simulate_cli.register_cli(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_simulate_cli_from_store_and_pickle(tmp_path):
    """`simulate` re-runs a store's inputs (same voltages as a direct run) and reads original pickles."""
    import pickle

    from biophys import dataset

    spikes = np.stack([random_input(54, 120, seed=s, p_exc=0.06).T for s in (4, 5)])
    with CellSimulator(BALL, SimConfig()) as sim:
        direct = [sim.run(spikes[i].T, 120) for i in range(2)]
        table = sim.synapses
    source = dataset.build_dataset(spikes, np.zeros((2, 120)), [[], []], [11, 12], table, {}, {})
    dataset.write_store(source, tmp_path / "in.zarr")
    assert _cli(["simulate", "--inputs", str(tmp_path / "in.zarr"), "--out", str(tmp_path / "out.zarr"),
                 "--cell", "ball-and-stick"]) == 0
    out = dataset.NeuronIOStore(tmp_path / "out.zarr").load()
    np.testing.assert_array_equal(out.ds["input_spikes"].values, spikes)
    np.testing.assert_array_equal(out.soma_voltage(1), direct[1].soma_mV)
    np.testing.assert_array_equal(out.spike_times(0), direct[0].spike_times_ms)
    assert out.ds["seed"].values.tolist() == [11, 12]
    assert out.provenance["cell"]["name"] == "ball-and-stick" and "mechanism_hash" in out.provenance

    trains = inputs.spike_matrix_to_times(spikes[0].T)
    original = {"Params": {"allSegmentsType": ["basal"] * 10 + ["apical"] * 17, "totalSimDurationInSec": 0.12},
                "Results": {"listOfSingleSimulationDicts": [{
                    "exInputSpikeTimes": {k: trains[k] for k in range(27) if len(trains[k])},
                    "inhInputSpikeTimes": {k: trains[27 + k] for k in range(27) if len(trains[27 + k])}}]}}
    with open(tmp_path / "in.p", "wb") as handle:
        pickle.dump(original, handle, protocol=2)
    assert _cli(["simulate", "--inputs", str(tmp_path / "in.p"), "--out", str(tmp_path / "p.zarr"),
                 "--cell", "ball-and-stick"]) == 0
    np.testing.assert_array_equal(dataset.NeuronIOStore(tmp_path / "p.zarr").soma_voltage(0), direct[0].soma_mV)
    assert _cli(["simulate", "--inputs", str(tmp_path / "in.p"), "--out", str(tmp_path / "p.zarr"),
                 "--cell", "ball-and-stick"]) == 1  # refuses to overwrite


SWC = """# soma (3-point), one basal, an apical trunk with two branches
1 1 0 0 0 6 -1
2 1 0 -6 0 6 1
3 1 0 6 0 6 1
4 3 0 -6 0 1 1
5 3 0 -120 0 0.8 4
6 4 0 6 0 1.5 1
7 4 0 250 0 1.2 6
8 4 60 320 0 0.8 7
9 4 -60 320 0 0.8 7
"""


def test_swc_file_builds_through_import3d(tmp_path):
    from biophys.morphology import MorphologyError

    path = tmp_path / "small.swc"
    path.write_text(SWC)
    with CellSimulator(CellConfig(morphology=str(path)), SimConfig()) as sim:
        regions = {s.region for s in sim.morphology.sections}
        assert regions == {"soma", "basal", "apical", "axon"}
        assert len(sim.morphology.region("apical")) == 3
        assert sim.morphology.nexus is None and sim.provenance()["morphology"]["kind"] == "file"
        result = sim.run(np.zeros((sim.n_synapses, 20), np.uint8), 20)
    assert result.nexus_mV is None and result.soma_mV.shape == (20,)
    no_apical = tmp_path / "noapical.swc"
    no_apical.write_text("\n".join(SWC.splitlines()[:6]) + "\n")
    with pytest.raises(MorphologyError, match="no apical dendrite"):
        CellSimulator(CellConfig(morphology=str(no_apical)), SimConfig())
