"""Targets, signed inputs, training windows (surrogate.data) and whole-simulation prediction (surrogate.predict)."""

import numpy as np
import pytest
import torch

from biophys import dataset
from biophys.dataset import NeuronIOStore, StoreError
from fakes import fake_dataset, fake_store
from conventions import signals
from surrogate import data, predict, shared_data
from surrogate.models import build_model


def test_soma_target_known_values_and_inverse():
    v = np.array([-80.0, -67.7, -60.0, -55.0, -40.0, 20.0])
    expected = np.array([-1.23, 0.0, 0.77, 1.27, 1.27, 1.27])  # (min(v, -55) + 67.7) * 0.1 by hand
    np.testing.assert_allclose(signals.soma_target(v), expected, atol=1e-12)
    np.testing.assert_allclose(signals.soma_target(torch.tensor(v)).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(signals.soma_from_target(signals.soma_target(v)), np.minimum(v, -55.0), atol=1e-12)
    np.testing.assert_allclose(signals.clip_soma(v), [-80.0, -67.7, -60.0, -55.0, -55.0, -55.0])


def test_signed_inputs_multiplies_counts_by_sign():
    spikes = np.array([[[0, 1, 2], [3, 0, 1]]], dtype=np.uint8)
    signs = np.array([1, -1, -1], dtype=np.int8)
    x = data.signed_inputs(spikes, signs)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[[0, -1, -2], [3, 0, -1]]])


def test_loaded_arrays_are_reused_only_inside_the_block_and_only_for_the_same_selection(fake_store, tmp_path):
    store = NeuronIOStore(fake_store)
    assert data.NeuronIOArrays.from_store(store) is not data.NeuronIOArrays.from_store(store)
    with shared_data.reuse_loaded():
        first = data.NeuronIOArrays.from_store(fake_store)
        assert data.NeuronIOArrays.from_store(NeuronIOStore(fake_store)) is first
        part = data.NeuronIOArrays.from_store(store, np.array([1, 3]))
        assert part is not first and part.n_sims == 2
        assert data.NeuronIOArrays.from_store(store, np.array([1, 3])) is part
        assert data.NeuronIOArrays.from_store(store, channels=np.arange(store.n_synapses)[::-1]) is not first
        copy = dataset.write_store(dataset.open_dataset(fake_store).load(), tmp_path / "copy.zarr")
        assert data.NeuronIOArrays.from_store(copy) is not first  # another store
    assert data.NeuronIOArrays.from_store(store) is not first
    np.testing.assert_array_equal(data.NeuronIOArrays.from_store(store).spikes, first.spikes)


def test_arrays_read_the_store(fake_store):
    store = NeuronIOStore(fake_store)
    arrays = data.NeuronIOArrays.from_store(store)
    assert (arrays.n_sims, arrays.n_time, arrays.n_synapses) == (store.n_sims, store.n_time, store.n_synapses)
    np.testing.assert_array_equal(arrays.spikes[2], store.input_spikes(2))
    np.testing.assert_array_equal(arrays.soma_mv[1], store.soma_voltage(1))
    np.testing.assert_array_equal(arrays.spike_labels[3], store.output_spikes(3))
    np.testing.assert_array_equal(arrays.signs, store.signs)
    part = data.NeuronIOArrays.from_store(store, np.array([1, 3]))
    np.testing.assert_array_equal(part.soma_mv, arrays.soma_mv[[1, 3]])
    np.testing.assert_array_equal(part.sim_ids, store.sim_ids[[1, 3]])


def test_in_memory_nbytes_is_what_the_arrays_take(fake_store):
    store = NeuronIOStore(fake_store)
    arrays = data.NeuronIOArrays.from_store(store)
    held = arrays.spikes.nbytes + arrays.soma_mv.nbytes + arrays.spike_labels.nbytes
    assert data.in_memory_nbytes(store) == held == 4 * 1200 * (16 + 5)
    assert data.in_memory_nbytes(store, 1) == held // 4


@pytest.fixture(scope="module")
def long_store(tmp_path_factory):
    """2.5 s simulations: three 1000 ms chunks per simulation, so many windows straddle two chunks."""
    return fake_store(tmp_path_factory.mktemp("long") / "long.zarr", n_sims=3, n_time=2500, seed=4)


def test_read_input_spikes_equals_input_spikes(long_store):
    store = NeuronIOStore(long_store)
    for sim, start, stop in [(0, 0, None), (1, 700, 1200), (2, 999, 2001), (2, 2499, 2500)]:
        direct = store.read_input_spikes(sim, start, stop)
        assert direct.dtype == np.uint8
        np.testing.assert_array_equal(direct, store.input_spikes(sim, start, stop))


def test_lazy_data_holds_the_targets_and_reads_the_same_spikes(long_store):
    sims = np.array([2, 0])
    arrays = data.NeuronIOArrays.from_store(long_store, sims)
    lazy = data.LazyNeuronIO.from_store(long_store, sims)
    assert (lazy.n_sims, lazy.n_time, lazy.n_synapses) == (arrays.n_sims, arrays.n_time, arrays.n_synapses)
    for name in ("signs", "soma_mv", "spike_labels", "sim_ids"):
        np.testing.assert_array_equal(getattr(lazy, name), getattr(arrays, name), err_msg=name)
    for a, b in zip(lazy.spike_times_ms, arrays.spike_times_ms, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lazy.input_sims(0, 2), arrays.spikes)
    sims_in_data, starts = np.array([1, 0, 1]), np.array([0, 900, 2100])
    np.testing.assert_array_equal(lazy.input_windows(sims_in_data, starts, 400),
                                  arrays.input_windows(sims_in_data, starts, 400))
    np.testing.assert_array_equal(lazy.input_windows(sims_in_data, starts, 400)[1], arrays.spikes[0, 900:1300])


def test_lazy_and_in_memory_batches_are_identical(long_store):
    arrays = data.NeuronIOArrays.from_store(long_store)
    lazy = data.LazyNeuronIO.from_store(long_store)
    in_memory = data.WindowSampler(arrays, batch_size=6, window_ms=500, seed=9)
    on_demand = data.WindowSampler(lazy, batch_size=6, window_ms=500, seed=9)
    replay = data.WindowSampler(arrays, batch_size=6, window_ms=500, seed=9)
    straddling = 0
    for _ in range(4):
        starts = replay.draw()[1]
        straddling += int(np.sum(starts // 1000 != (starts + 499) // 1000))
        a, b = in_memory.batch(), on_demand.batch()
        for name, x, y in zip(a._fields, a, b):
            assert torch.equal(x, y), name
    assert in_memory.state == on_demand.state
    assert straddling > 0, "no window crossed a 1000 ms chunk boundary; pick another seed"


def test_lazy_windows_are_read_one_window_at_a_time(long_store, monkeypatch):
    lazy = data.LazyNeuronIO.from_store(long_store)
    reads = []
    real = NeuronIOStore.read_input_spikes

    def recording(self, sim, start=0, stop=None):
        reads.append((sim, start, stop))
        return real(self, sim, start, stop)

    monkeypatch.setattr(NeuronIOStore, "read_input_spikes", recording)
    sampler = data.WindowSampler(lazy, batch_size=5, window_ms=300, seed=2)
    sims, starts = data.WindowSampler(lazy, batch_size=5, window_ms=300, seed=2).draw()
    sampler.batch()
    assert reads == [(int(s), int(t), int(t) + 300) for s, t in zip(sims, starts)]


@pytest.mark.parametrize("source", [data.NeuronIOArrays, data.LazyNeuronIO])
def test_nan_voltage_is_a_clear_error(tmp_path, monkeypatch, source):
    ds = fake_dataset(n_sims=3, n_time=700)
    ds["soma_voltage"][2, 40] = np.nan
    path = dataset.write_store(ds, tmp_path / "nan.zarr")

    def no_spikes(*args, **kwargs):
        raise AssertionError("input spikes were read before the voltages were checked")

    monkeypatch.setattr(NeuronIOStore, "input_spikes", no_spikes)
    monkeypatch.setattr(NeuronIOStore, "read_input_spikes", no_spikes)
    with pytest.raises(StoreError, match=r"NaN.*simulations \[2\]"):
        source.from_store(path)


@pytest.mark.parametrize("source", [data.NeuronIOArrays, data.LazyNeuronIO])
def test_missing_store_is_a_store_error(tmp_path, source):
    with pytest.raises(StoreError, match="no dataset store"):
        source.from_store(tmp_path / "absent.zarr")


def test_skip_defaults_and_window_checks():
    assert data.default_skip_ms(1200, 500) == 500
    assert data.default_skip_ms(700, 500) == 200
    assert data.default_skip_ms(500, 500) == 0
    data.check_window(1000, 500, 150, 500)
    with pytest.raises(ValueError, match="does not fit"):
        data.check_window(1000, 500, 150, 501)
    with pytest.raises(ValueError, match="burn_in_ms"):
        data.check_window(1000, 500, 500, 0)


@pytest.fixture
def arrays(fake_store):
    return data.NeuronIOArrays.from_store(fake_store)


def test_sampler_batches_are_the_store_windows(arrays):
    sampler = data.WindowSampler(arrays, batch_size=5, window_ms=300, skip_ms=None, seed=3)
    assert sampler.skip_ms == 500
    replay = data.WindowSampler(arrays, batch_size=5, window_ms=300, seed=3)
    sims, starts = replay.draw()
    batch = sampler.batch()
    assert batch.x.shape == (5, 300, arrays.n_synapses) and batch.x.dtype == torch.float32
    assert batch.spike.shape == batch.soma.shape == (5, 300)
    assert np.all(starts >= 500) and np.all(starts + 300 <= arrays.n_time)
    for b, (s, t0) in enumerate(zip(sims, starts)):
        window = slice(t0, t0 + 300)
        expected_x = arrays.spikes[s, window].astype(np.float64) * arrays.signs
        np.testing.assert_array_equal(batch.x[b].numpy(), expected_x)
        np.testing.assert_array_equal(batch.spike[b].numpy(), arrays.spike_labels[s, window])
        expected_soma = (np.minimum(arrays.soma_mv[s, window].astype(np.float64), -55.0) + 67.7) * 0.1
        np.testing.assert_allclose(batch.soma[b].numpy(), expected_soma, atol=1e-5)


def test_sampler_is_reproducible_and_resumable(arrays):
    a = data.WindowSampler(arrays, batch_size=4, seed=11)
    b = data.WindowSampler(arrays, batch_size=4, seed=11)
    c = data.WindowSampler(arrays, batch_size=4, seed=12)
    first = a.batch()
    assert torch.equal(first.x, b.batch().x)
    assert not torch.equal(first.x, c.batch().x)
    saved = dict(a.state)
    expected = a.batch()
    a.batch()
    a.state = saved
    assert torch.equal(a.batch().x, expected.x)


def test_sampler_rejects_windows_that_do_not_fit(arrays):
    with pytest.raises(ValueError, match="does not fit"):
        data.WindowSampler(arrays, batch_size=2, window_ms=arrays.n_time + 1)


def test_predict_store_runs_whole_sims_and_drops_burn_in(fake_store):
    torch.manual_seed(0)
    model = build_model("lstm", {"hidden": 4}, n_inputs=16)
    store = NeuronIOStore(fake_store)
    pred = predict.predict_store(model, store, burn_in_ms=150, batch_size=3)
    n, t = store.n_sims, store.n_time - 150
    for key in ("spike_prob", "spike_true", "soma_pred_mv", "soma_true_mv"):
        assert pred[key].shape == (n, t), key
    x = torch.from_numpy(store.input_spikes(1).astype(np.float32) * store.signs)[None]
    with torch.no_grad():
        y = model(x)[0, 150:].double().numpy()
    np.testing.assert_allclose(pred["spike_prob"][1], 1 / (1 + np.exp(-y[:, 0])), rtol=1e-5)
    np.testing.assert_allclose(pred["soma_pred_mv"][1], y[:, 1] * 10 - 67.7, rtol=1e-5)
    np.testing.assert_array_equal(pred["soma_true_mv"][1], np.minimum(store.soma_voltage(1)[150:], -55.0))
    np.testing.assert_array_equal(pred["spike_true"][1], store.output_spikes(1)[150:])
    np.testing.assert_array_equal(pred["time_ms"][[0, -1]], [150, store.n_time - 1])
    np.testing.assert_array_equal(pred["spike_times_ms"][1], store.spike_times(1))
    assert model.training, "predict_store must restore the model's mode"


def test_lazy_predictions_equal_in_memory_ones(long_store):
    torch.manual_seed(1)
    model = build_model("lstm", {"hidden": 4}, n_inputs=16)
    arrays = data.NeuronIOArrays.from_store(long_store)
    lazy = data.LazyNeuronIO.from_store(long_store)
    y = predict.predict_arrays(model, arrays, batch_size=2)
    np.testing.assert_array_equal(predict.predict_arrays(model, lazy, batch_size=2), y)
    from_path = predict.predict_store(model, long_store, burn_in_ms=100, batch_size=2)
    from_arrays = predict.predict_store(model, arrays, burn_in_ms=100, batch_size=2)
    for key in ("spike_prob", "spike_true", "soma_pred_mv", "soma_true_mv", "sim_ids"):
        np.testing.assert_array_equal(from_path[key], from_arrays[key], err_msg=key)
    np.testing.assert_array_equal(from_path["soma_pred_mv"], signals.soma_from_target(y[:, 100:, 1]))


def test_predict_store_checks_the_input_width(fake_store):
    model = build_model("lstm", {"hidden": 4}, n_inputs=20)
    with pytest.raises(StoreError, match="expects 20 input channels.*16 synapses"):
        predict.predict_store(model, fake_store)


def test_fake_store_has_spikes_to_learn(tmp_path):
    """The tests below rely on the fake store holding output spikes after the burn-in."""
    arrays = data.NeuronIOArrays.from_store(fake_store(tmp_path / "s.zarr", n_sims=2, n_time=1200, seed=1))
    assert arrays.spike_labels[:, 150:].any()
