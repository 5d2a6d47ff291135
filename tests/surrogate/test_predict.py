"""Prediction maps a store's channels to the model's by synapse layout (surrogate.predict, surrogate.routing)."""

import numpy as np
import pytest
import torch

from biophys import dataset
from biophys.dataset import NeuronIOStore, StoreError
from conventions.layout import SynapseLayout
from fakes import fake_dataset
from surrogate import predict
from surrogate.data import LazyNeuronIO, NeuronIOArrays, store_layout
from surrogate.elm import make_routing
from surrogate.elm_config import ELMConfig
from surrogate.models import build_model
from surrogate.routing import layout_interleaving

BRANCH = {"n_branches": 4, "synapses_per_branch": 6, "d_memory": 3}


def permuted_dataset(perm: np.ndarray, **kwargs):
    """The fake dataset with its synapses (input channels and their coordinates) in the order ``perm``."""
    ds = fake_dataset(**kwargs)
    return ds.isel(synapse=perm).assign_coords(synapse=np.arange(len(perm)))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same data twice: in the usual order, and with the synapses shuffled."""
    root = tmp_path_factory.mktemp("layout")
    perm = np.random.default_rng(0).permutation(16)
    usual = dataset.write_store(fake_dataset(n_sims=3, n_time=400, seed=2), root / "usual.zarr")
    shuffled = dataset.write_store(permuted_dataset(perm, n_sims=3, n_time=400, seed=2), root / "shuffled.zarr")
    return NeuronIOStore(usual), NeuronIOStore(shuffled)


@pytest.mark.parametrize("kind, config", [("lstm", {"hidden": 4}), ("branch-elm", BRANCH)])
def test_a_store_with_permuted_synapses_gives_the_same_predictions(pair, kind, config):
    usual, shuffled = pair
    assert store_layout(usual) != store_layout(shuffled)
    torch.manual_seed(0)
    model = build_model(kind, config, n_inputs=16, layout=store_layout(usual))
    expected = predict.predict_store(model, usual, burn_in_ms=50)
    for source in (shuffled, NeuronIOArrays.from_store(shuffled), LazyNeuronIO.from_store(shuffled)):
        got = predict.predict_store(model, source, burn_in_ms=50)
        for key in ("spike_prob", "soma_pred_mv", "soma_true_mv", "spike_true"):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_a_model_without_a_layout_reads_channels_by_position(pair):
    usual, shuffled = pair
    torch.manual_seed(0)
    model = build_model("lstm", {"hidden": 4}, n_inputs=16)
    assert model.layout is None and predict.model_channels(model, NeuronIOArrays.from_store(shuffled)) is None
    a = predict.predict_store(model, usual, burn_in_ms=50)["soma_pred_mv"]
    assert not np.array_equal(a, predict.predict_store(model, shuffled, burn_in_ms=50)["soma_pred_mv"])


def test_a_store_lacking_the_models_channels_is_refused_in_one_line(pair, tmp_path):
    usual, _ = pair
    other = NeuronIOStore(dataset.write_store(fake_dataset(n_sims=2, n_time=400, n_segments=5), tmp_path / "o.zarr"))
    model = build_model("lstm", {"hidden": 4}, n_inputs=16, layout=store_layout(usual))
    with pytest.raises(StoreError) as info:
        predict.predict_store(model, other)
    message = str(info.value)
    assert message.startswith("the store lacks 6 of the run's 16 channels, e.g. ") and "\n" not in message


def test_neuronio_routing_from_the_usual_layout_equals_the_positional_one(pair):
    usual, shuffled = pair
    config = ELMConfig(n_inputs=16, **BRANCH)
    by_position = make_routing(config)
    by_layout = make_routing(config, store_layout(usual))
    assert all(torch.equal(a, b) for a, b in zip(by_position, by_layout))
    layout = store_layout(shuffled)
    interleaved = layout_interleaving(layout)
    assert sorted(interleaved.tolist()) == list(range(16))
    for exc, inh in interleaved.numpy().reshape(-1, 2):
        assert layout.segments[exc] == layout.segments[inh] and (layout.kinds[exc], layout.kinds[inh]) == ("exc", "inh")
    indices, _ = make_routing(config, layout)
    assert indices[:6].tolist() == interleaved[:6].tolist()  # branch 0 reads the first window of that order


def test_a_layout_of_another_width_is_refused():
    layout = SynapseLayout(("a", "a"), ("exc", "inh"))
    with pytest.raises(ValueError, match="2 channels but the model 16 inputs"):
        build_model("lstm", {"hidden": 4}, n_inputs=16, layout=layout)
