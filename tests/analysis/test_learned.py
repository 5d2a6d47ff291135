"""Learned ELM parameters mapped back to input channels, checked against routing worked out by hand."""

import numpy as np
import pytest
import torch

from analysis import learned
from fakes import fake_synapses
from surrogate.elm import ELM
from surrogate.elm_config import ELMConfig


def test_branch_elm_weights_average_over_the_slots_that_read_each_input():
    # 16 inputs interleaved as [0, 8, 1, 9, …]; 4 windows of 6 slots at stride 4 cover positions 0–15 once,
    # positions 4–5, 8–9 and 12–13 twice (the last window's slots 16 and 17 are masked); at initialisation every
    # slot holds 0.5, so every input's effective weight is 0.5 whatever its routing multiplicity
    model = ELM(ELMConfig(n_inputs=16, n_branches=4, synapses_per_branch=6, d_memory=4))
    assert learned.input_weights(model) == pytest.approx(np.full(16, 0.5))


def test_branch_elm_weight_is_the_mean_of_its_valid_slots_not_the_sum():
    # the routing above: slots 0–23 read inputs [0, 8, 1, 9, 2, 10, 2, 10, 3, 11, 4, 12, 4, 12, 5, 13, 6, 14, 6,
    # 14, 7, 15, 15 (masked), 15 (masked)]; slot k holds weight k
    model = ELM(ELMConfig(n_inputs=16, n_branches=4, synapses_per_branch=6, d_memory=4))
    with torch.no_grad():
        model._proto_w_s.copy_(torch.arange(24.0))
    by_input = {0: 0, 8: 1, 1: 2, 9: 3, 2: 5, 10: 6, 3: 8, 11: 9, 4: 11, 12: 12, 5: 14, 13: 15, 6: 17, 14: 18,
                7: 20, 15: 21}
    assert learned.input_weights(model) == pytest.approx([by_input[i] for i in range(16)])


def test_vanilla_elm_weights_are_relu_of_the_raw_weights():
    model = ELM(ELMConfig(n_inputs=5, d_memory=3))
    with torch.no_grad():
        model._proto_w_s.copy_(torch.tensor([0.3, -0.2, 1.5, 0.0, 2.0]))
    assert learned.input_weights(model) == pytest.approx([0.3, 0.0, 1.5, 0.0, 2.0])


def test_tau_m_starts_log_spaced_between_the_bounds():
    model = ELM(ELMConfig(n_inputs=4, d_memory=20))
    expected = np.geomspace(1.0, 150.0, 20)  # Spieler et al. 2023: 1.0, 1.3, 1.7, 2.2, …, 150 ms
    assert learned.initial_tau_m_ms(model) == pytest.approx(expected, rel=1e-4)
    assert learned.tau_m_ms(model) == pytest.approx(expected, rel=1e-4)
    assert learned.is_elm(model) and not learned.is_elm(torch.nn.Linear(2, 2))


def test_weights_join_the_synapse_of_each_input_by_its_store_channel():
    synapses = fake_synapses(4)  # store channels 0–3 excitatory, 4–7 inhibitory
    model = ELM(ELMConfig(n_inputs=8, d_memory=3))
    with torch.no_grad():
        model._proto_w_s.copy_(torch.arange(8.0))
    channels = np.array([7, 6, 5, 4, 3, 2, 1, 0])  # model input i reads store channel 7 − i
    table = learned.weights_by_synapse(model, synapses, channels)
    assert table["w_s"].tolist() == list(range(8))
    assert table["kind"].tolist() == ["inh"] * 4 + ["exc"] * 4
    assert table["distance_um"].tolist() == synapses["distance_um"].to_numpy()[::-1].tolist()
    in_order = learned.weights_by_synapse(model, synapses, None)
    assert in_order["segment"].tolist() == synapses["segment"].tolist() and in_order["w_s"].tolist() == list(range(8))
