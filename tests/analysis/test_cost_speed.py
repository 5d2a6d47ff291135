"""Inference speed as users run a surrogate: batched over at least 64 whole simulations, batch size recorded."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from analysis import cost
from fakes import fake_store
from surrogate.data import NeuronIOArrays


class Recorder(nn.Module):
    """Outputs zeros [B, T, 2] and records every input batch's shape."""

    def __init__(self, n_inputs):
        super().__init__()
        self.config = SimpleNamespace(n_inputs=n_inputs)  # what surrogate.models.model_input_width reads
        self.shapes, self.inputs = [], []
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        self.inputs.append(x.clone())
        return torch.zeros(*x.shape[:2], 2)


@pytest.fixture
def data(tmp_path):
    return NeuronIOArrays.from_store(fake_store(tmp_path / "s.zarr", n_sims=3, n_time=200, seed=4))


def test_speed_runs_64_simulations_in_batches_of_the_given_size(data):
    model = Recorder(data.n_synapses)
    speed = cost.batched_speed(model, data, neuron_wall_s=2.0, neuron_reason=None, batch_size=16)
    assert model.shapes[0][0] == 1  # the warm-up
    assert [s[0] for s in model.shapes[1:]] == [16, 16, 16, 16]
    assert speed["n_sims"] == 64 and speed["batch_size"] == 16 and speed["torch_threads"] == torch.get_num_threads()
    assert speed["load_average"] >= 0.0
    assert speed["simulated_s_per_wall_s"] == pytest.approx(64 * 0.2 / speed["wall_s"])
    # NEURON's rate is the store's own: 3 simulations of 0.2 s in 2 s
    assert speed["neuron_simulated_s_per_wall_s"] == pytest.approx(0.3)
    # simulation i is the store's i mod 3, with its signed inputs
    batch = torch.cat(model.inputs[1:])
    for i in (0, 4, 63):
        expected = data.spikes[i % 3].astype(np.float32) * data.signs.astype(np.float32)
        assert np.array_equal(batch[i].numpy(), expected)


def test_a_store_larger_than_64_simulations_is_timed_whole(data):
    model = Recorder(data.n_synapses)
    speed = cost.batched_speed(model, data, None, "no NEURON time", n_sims=2, batch_size=2)
    assert speed["n_sims"] == 3 and [s[0] for s in model.shapes[1:]] == [2, 1]
    assert speed["speedup_vs_neuron"] is None and speed["speedup_reason"] == "no NEURON time"


def test_evaluate_and_the_report_state_the_batched_measurement(tmp_path):
    from analysis.evaluate import evaluate_run
    from analysis.report import write_report
    from surrogate.config import TrainConfig
    from surrogate.train import train

    store = fake_store(tmp_path / "t.zarr", n_sims=2, n_time=400, seed=5)
    run = train(TrainConfig(model="branch-elm", model_config={"n_branches": 4, "synapses_per_branch": 6,
                                                              "d_memory": 4},
                            train=str(store), valid=str(store), out=str(tmp_path / "run"), epochs=1,
                            batches_per_epoch=1, batch_size=2, window_ms=200, burn_in_ms=50, skip_ms=0, threads=1),
                progress=False)
    speed = evaluate_run(run, store)["speed"]
    assert (speed["n_sims"], speed["batch_size"]) == (cost.SPEED_SIMS, cost.SPEED_BATCH)
    report = write_report([run], store, tmp_path / "report").read_text()
    assert f"over {cost.SPEED_SIMS} whole simulations in batches of {cost.SPEED_BATCH}" in report
