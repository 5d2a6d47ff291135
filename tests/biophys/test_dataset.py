import json

import numpy as np
import pytest
import xarray as xr

from biophys import dataset
from fakes import fake_dataset, fake_store, fake_synapses


def test_round_trip_identical(tmp_path):
    ds = fake_dataset(n_sims=3, n_time=700, n_segments=5)
    path = dataset.write_store(ds, tmp_path / "a.zarr")
    back = dataset.open_dataset(path).load()
    xr.testing.assert_identical(ds, back)


def test_spike_bins_convention():
    labels = dataset.spike_bins(np.array([0.4, 10.7, 10.3, 99.9, 250.0]), 100)
    # int(t − 0.5) truncates toward zero: 0.4 → 0, 10.3 → 9, 10.7 → 10, 99.9 → 99; 250 ms is past the end
    assert np.flatnonzero(labels).tolist() == [0, 9, 10, 99]


def test_store_reader(tmp_path):
    path = fake_store(tmp_path / "s.zarr", n_sims=2, n_time=600, n_segments=4)
    store = dataset.NeuronIOStore(path)
    assert (store.n_sims, store.n_time, store.n_synapses) == (2, 600, 8)
    assert store.signs.tolist() == [1] * 4 + [-1] * 4
    assert store.input_spikes(1, 100, 200).shape == (100, 8)
    assert store.soma_voltage(0).dtype == np.float32
    times = store.spike_times(0)
    assert np.array_equal(np.flatnonzero(store.output_spikes(0)), np.unique((times - 0.5).astype(int)))
    assert store.config["generator"] == "tests.fakes"
    assert "simulations: 2 × 600 ms" in store.summary()
    assert list(store.synapses().columns) == list(dataset.SYNAPSE_COLUMNS)


def test_refuses_overwrite_and_bad_shapes(tmp_path):
    path = fake_store(tmp_path / "s.zarr", n_sims=1, n_time=100, n_segments=2)
    with pytest.raises(dataset.StoreError, match="already exists"):
        fake_store(path, n_sims=1, n_time=100, n_segments=2)
    with pytest.raises(dataset.StoreError, match="soma_voltage shape"):
        dataset.build_dataset(np.zeros((2, 10, 4), np.uint8), np.zeros((2, 11)), [[], []], [0, 1],
                              fake_synapses(2), {}, {})
    with pytest.raises(dataset.StoreError, match="synapse table has"):
        dataset.build_dataset(np.zeros((1, 10, 6), np.uint8), np.zeros((1, 10)), [[]], [0],
                              fake_synapses(2), {}, {})


def test_open_missing_and_corrupt(tmp_path):
    with pytest.raises(dataset.StoreError, match="no dataset store"):
        dataset.open_dataset(tmp_path / "nope.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(dataset.StoreError, match="not a Zarr v3 store"):
        dataset.open_dataset(tmp_path / "empty.zarr")
    path = fake_store(tmp_path / "c.zarr", n_sims=1, n_time=100, n_segments=2)
    (path / "zarr.json").write_text("{ not json")
    with pytest.raises(dataset.StoreError, match="cannot open"):
        dataset.open_dataset(path)


def test_concat_shards(tmp_path):
    a = fake_dataset(n_sims=2, n_time=300, n_segments=3, seed=1)
    b = fake_dataset(n_sims=2, n_time=300, n_segments=3, seed=1).assign_coords(sim=[2, 3])
    pa = dataset.write_store(b, tmp_path / "b.zarr")
    pb = dataset.write_store(a, tmp_path / "a.zarr")
    out = dataset.concat_stores([pa, pb], tmp_path / "all.zarr")
    merged = dataset.open_dataset(out)
    assert merged["sim"].values.tolist() == [0, 1, 2, 3]
    assert json.loads(merged.attrs["config"])["seed"] == 1


def test_concat_sums_shard_timing(tmp_path):
    paths = []
    for i, seconds in enumerate((1.5, 2.25)):
        ds = fake_dataset(n_sims=1, n_time=100, n_segments=2, seed=3).assign_coords(sim=[i])
        prov = json.loads(ds.attrs["provenance"])
        prov["timing"] = {"neuron_wall_s": seconds}
        ds.attrs["provenance"] = json.dumps(prov)
        paths.append(dataset.write_store(ds, tmp_path / f"{i}.zarr"))
    out = dataset.concat_stores(paths, tmp_path / "all.zarr")
    assert dataset.NeuronIOStore(out).provenance["timing"]["neuron_wall_s"] == pytest.approx(3.75)
