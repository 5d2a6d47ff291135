"""Metrics on hand-made cases whose answers are known without the code under test."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from analysis import cost, metrics
from conventions.scores import spike_auc
from conventions.spikes import match_spikes
from surrogate.elm import ELM
from surrogate.elm_config import ELMConfig
from surrogate.models import num_params


def test_auc_perfect_inverted_and_random():
    labels = np.array([0, 0, 1, 0, 1, 0], dtype=bool)
    assert spike_auc(labels, labels * 0.9 + 0.05) == 1.0
    assert spike_auc(labels, 1.0 - labels) == 0.0
    rng = np.random.default_rng(0)
    big = rng.random(200_000) < 0.05
    assert spike_auc(big, rng.random(big.size)) == pytest.approx(0.5, abs=0.01)


def test_auc_counts_pairs_by_hand():
    # positives score 0.8 and 0.3, negatives 0.5, 0.1, 0.2: of 6 (pos, neg) pairs 3 + 2 are ordered right
    labels = np.array([1, 0, 1, 0, 0], dtype=bool)
    scores = np.array([0.8, 0.5, 0.3, 0.1, 0.2])
    assert spike_auc(labels, scores) == pytest.approx(5 / 6)


def test_auc_single_class_is_nan_and_shapes_must_match():
    assert math.isnan(spike_auc(np.zeros(10, bool), np.linspace(0, 1, 10)))
    with pytest.raises(ValueError, match="shapes differ"):
        spike_auc(np.zeros(3, bool), np.zeros(4))


def test_tpr_at_fpr_interpolates_between_vertices_and_takes_top_of_vertical_segments():
    fpr = np.array([0.0, 0.0, 0.01, 0.01, 0.02, 1.0])
    tpr = np.array([0.0, 0.4, 0.6, 0.7, 0.9, 1.0])
    assert metrics.tpr_at_fpr(fpr, tpr, 0.0) == pytest.approx(0.4)
    assert metrics.tpr_at_fpr(fpr, tpr, 0.0025) == pytest.approx(0.4 + 0.25 * (0.6 - 0.4))
    assert metrics.tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(0.7)
    assert metrics.tpr_at_fpr(fpr, tpr, 0.015) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        metrics.tpr_at_fpr(fpr, tpr, 1.5)


def test_tpr_at_fpr_on_a_roc_built_from_scores():
    # one positive above every negative, three tied at 50.5 with 49 of 100 negatives (51..99) above them:
    # ROC vertices (0, 0), (0, 0.25), (0.49, 0.25), (0.49, 1), (1, 1)
    labels = np.r_[np.ones(4, bool), np.zeros(100, bool)]
    scores = np.r_[200.0, 50.5, 50.5, 50.5, np.arange(100.0)]
    fpr, tpr = metrics.roc(labels, scores)
    assert metrics.tpr_at_fpr(fpr, tpr, 0.0025) == pytest.approx(0.25)
    assert metrics.tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(0.25)
    assert metrics.tpr_at_fpr(fpr, tpr, 0.49) == pytest.approx(1.0)


def test_soma_errors_by_hand_with_clipping():
    truth = np.array([-70.0, -60.0, 20.0, -50.0])  # clipped: -70, -60, -55, -55
    pred = np.array([-69.0, -62.0, -55.0, -52.0])  # errors: 1, -2, 0, 3
    out = metrics.soma_errors(truth, pred)
    assert out["rmse_mV"] == pytest.approx(math.sqrt((1 + 4 + 0 + 9) / 4))
    assert out["mae_mV"] == pytest.approx(6 / 4)
    clipped = np.array([-70.0, -60.0, -55.0, -55.0])
    error = np.array([1.0, -2.0, 0.0, 3.0])
    assert out["explained_variance"] == pytest.approx(1 - error.var() / clipped.var())


def test_soma_errors_perfect_and_not_rescaled():
    truth = np.linspace(-80, -56, 50)
    assert metrics.soma_errors(truth, truth) == {"rmse_mV": 0.0, "mae_mV": 0.0, "explained_variance": 1.0}
    shifted = metrics.soma_errors(truth, truth + 2.0)
    assert shifted["rmse_mV"] == pytest.approx(2.0)  # a rescaling to the truth's mean would hide this offset
    assert shifted["explained_variance"] == pytest.approx(1.0)  # a constant offset explains all variance


def test_predicted_spike_bins_one_per_crossing_at_the_peak():
    p = np.array([0.0, 0.6, 0.9, 0.7, 0.1, 0.2, 0.8, 0.1, 0.95])
    assert metrics.predicted_spike_bins(p, 0.5).tolist() == [2, 6, 8]
    assert metrics.predicted_spike_bins(p, 0.99).tolist() == []


def test_coincidences_are_one_to_one_within_the_window():
    true = np.array([10.0, 11.0, 50.0, 90.0])
    pred = np.array([10.5, 52.0, 52.5, 95.0])
    # 10.5 matches one of 10/11 only; 52 matches 50 (|Δ| = 2); 52.5 has no partner left; 95 is too far
    assert match_spikes(true, pred, 2.0) == 2


def test_coincidence_factor_identical_and_disjoint():
    train = np.array([100.0, 250.0, 400.0, 700.0])
    n = match_spikes(train, train)
    assert metrics.coincidence_factor(n, 4, 4, 1000.0) == pytest.approx(1.0)
    disjoint = train + 20.0
    n0 = match_spikes(train, disjoint)
    assert n0 == 0
    gamma = metrics.coincidence_factor(n0, 4, 4, 1000.0)
    # by hand: ν = 4/1000 per ms, 2νΔ = 0.016, ⟨N_coinc⟩ = 0.064: Γ = −0.064 / 4 / 0.984
    assert gamma == pytest.approx(-0.064 / 4 / 0.984)
    assert gamma <= 0
    assert math.isnan(metrics.coincidence_factor(0, 0, 0, 1000.0))


def test_spike_timing_and_threshold_choice():
    probs = np.zeros(300)
    probs[[49, 149, 249]] = [0.9, 0.6, 0.3]  # bin k → predicted spike at offset + k + 1 ms
    true = [np.array([150.3, 250.2, 350.1])]
    timing = metrics.spike_timing(true, [probs], 0.5, offset_ms=[100.0])
    assert (timing["n_true"], timing["n_pred"], timing["n_coincident"]) == (3, 2, 2)
    assert timing["precision"] == 1.0 and timing["recall"] == pytest.approx(2 / 3)
    best = metrics.choose_threshold(true, [probs], [100.0])
    assert best < 0.3  # taking all three peaks is perfect
    assert metrics.spike_timing(true, [probs], best, [100.0])["coincidence_factor"] == pytest.approx(1.0)


def test_elm_macs_match_the_equations_by_hand():
    config = ELMConfig(n_inputs=1278, n_branches=45, synapses_per_branch=100, d_memory=20)
    # synapse weighting 4500 + traces 4500 + κ_m·m 20 + g·Δm 20 + MLP (45+20)·40 + 40·20 + readout 20·2
    assert cost.elm_macs_per_step(config) == 4500 + 4500 + 40 + 2600 + 800 + 40
    v2 = ELMConfig(n_inputs=1278, n_branches=45, synapses_per_branch=100, d_memory=20, version=2)
    assert cost.elm_macs_per_step(v2) == 4500 + 45 + 40 + 2600 + 800 + 40
    assert cost.macs_per_ms(ELM(config), 1278) == (cost.elm_macs_per_step(config), "elm-config")
    assert num_params(ELM(config)) == 8002


def test_hooked_macs_of_lstm_and_conv():
    torch.manual_seed(0)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(6, 4, kernel_size=3, padding=2)
            self.lstm = nn.LSTM(4, 5, batch_first=True)
            self.head = nn.Linear(5, 2)

        def forward(self, x):
            z = self.conv(x.transpose(1, 2))[..., : x.shape[1]]
            return self.head(self.lstm(z.transpose(1, 2))[0])

    # conv: 4·6·3 = 72 per step (the padded output is 2 steps longer: 72·34/32); LSTM 4·5·(4+5) = 180; head 10
    expected = 72 * (32 + 2) / 32 + 180 + 10
    assert cost.hooked_macs_per_step(Tiny(), 6, steps=32) == round(expected)


def test_speed_and_neuron_wall_time():
    wall, reason = cost.neuron_wall_seconds({"cell": {"name": "x"}})
    assert wall is None and "neuron_wall_s" in reason
    speed = cost.inference_speed(10_000.0, 2.0, 20_000.0, None, reason)
    assert speed["simulated_s_per_wall_s"] == pytest.approx(5.0) and speed["speedup_vs_neuron"] is None
    wall, reason = cost.neuron_wall_seconds({"timing": {"neuron_wall_s": 80.0}})
    speed = cost.inference_speed(10_000.0, 2.0, 20_000.0, wall, reason)
    assert speed["neuron_simulated_s_per_wall_s"] == pytest.approx(0.25)
    assert speed["speedup_vs_neuron"] == pytest.approx(20.0)
    assert cost.neuron_wall_seconds({"timing": {"neuron_wall_s": -1}})[0] is None
