"""Stimuli and probes on the ball-and-stick cell: each is added, takes effect, and is removed again."""

import numpy as np
import pytest

from biophys.config import CellConfig, SimConfig
from biophys.protocols import ValidationConfig, protocol_bac, protocol_bap
from biophys.simulator import CellSimulator
from biophys.stimuli import CurrentStep, EpscCurrent

pytestmark = pytest.mark.neuron

BALL = CellConfig(name="ball-and-stick")


def neuron_count(kind: str) -> int:
    from neuron import h

    return int(h.List(kind).count())


def test_run_stimuli_are_removed_after_the_run():
    with CellSimulator(BALL, SimConfig()) as sim:
        silent = [np.zeros(0)] * sim.n_synapses
        rest = sim.run_spike_times(silent, 60).soma_mV
        stepped = sim.run_spike_times(silent, 60, [CurrentStep(0.3, 10.0, 40.0),
                                                   EpscCurrent(0.2, 20.0, site="nexus")]).soma_mV
        assert stepped[40] > rest[40] + 1.0
        assert sim.attached.stimuli == [] and neuron_count("IClamp") == 0
        np.testing.assert_array_equal(sim.run_spike_times(silent, 60).soma_mV, rest)


def test_added_stimulus_stays_until_removed():
    with CellSimulator(BALL, SimConfig()) as sim:
        silent = [np.zeros(0)] * sim.n_synapses
        rest = sim.run_spike_times(silent, 40).soma_mV
        attached = sim.attached.add_stimulus(CurrentStep(0.3, 5.0, 30.0, site="apic[0](0.5)"))
        first = sim.run_spike_times(silent, 40).soma_mV
        second = sim.run_spike_times(silent, 40).soma_mV
        np.testing.assert_array_equal(first, second)
        assert first[30] > rest[30] + 1.0 and neuron_count("IClamp") == 1
        sim.attached.remove_stimulus(attached)
        assert not attached.attached and neuron_count("IClamp") == 0
        np.testing.assert_array_equal(sim.run_spike_times(silent, 40).soma_mV, rest)
        with pytest.raises(ValueError, match="unknown site"):
            sim.attached.add_stimulus(CurrentStep(0.1, 1.0, 1.0, site="dend[99](0.5)"))
        assert sim.attached.stimuli == []


def test_probes_are_removable_and_protocols_leave_none_behind():
    cfg = ValidationConfig(bap_distances_um=(50.0, 150.0), epsc_distance_um=150.0)
    with CellSimulator(BALL, SimConfig()) as sim:
        vectors = neuron_count("Vector")
        sim.attached.add_probes(["nexus", "dend[0](0.5)"])
        sim.run(np.zeros((sim.n_synapses, 20), np.uint8), 20)
        traces = sim.probe_traces(20)
        assert set(traces) == {"nexus", "dend[0](0.5)"} and traces["nexus"].shape == (160,)
        sim.attached.remove_probes(["nexus"])
        assert list(sim.probe_traces(20)) == ["dend[0](0.5)"]
        sim.attached.remove_probes()
        assert sim.probe_traces(20) == {} and neuron_count("Vector") == vectors
        for protocol in (protocol_bap, protocol_bac):
            protocol(sim, cfg)
            assert sim.attached.probes == {}
            assert sim.attached.stimuli == [] and neuron_count("IClamp") == 0
            assert neuron_count("Vector") == vectors
