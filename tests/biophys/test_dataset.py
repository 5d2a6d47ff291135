import errno
import json
import os

import numpy as np
import pytest
import xarray as xr

from conventions.signals import spike_bins
from biophys import dataset, shards
from fakes import fake_dataset, fake_store, fake_synapses


def test_round_trip_identical(tmp_path):
    ds = fake_dataset(n_sims=3, n_time=700, n_segments=5)
    path = dataset.write_store(ds, tmp_path / "a.zarr")
    back = dataset.open_dataset(path).load()
    xr.testing.assert_identical(ds, back)


def test_spike_bins_convention():
    labels = spike_bins(np.array([0.4, 10.7, 10.3, 99.9, 250.0]), 100)
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
    out = shards.concat_stores([pa, pb], tmp_path / "all.zarr")
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
    out = shards.concat_stores(paths, tmp_path / "all.zarr")
    assert dataset.NeuronIOStore(out).provenance["timing"]["neuron_wall_s"] == pytest.approx(3.75)


# --- streaming consolidation ------------------------------------------------------------------------------------


def write_shards(root, sizes, n_time=300, n_segments=3, seed=1, extra_vars=False):
    """Shards holding a shuffled 0..sum(sizes)−1 (so shards interleave and are unsorted inside), each with its
    own spike rate (so their spike counts, hence ``spike`` sizes, differ) and ``timing`` seconds."""
    sims = np.random.default_rng(seed).permutation(sum(sizes))
    paths, start = [], 0
    for i, n in enumerate(sizes):
        ds = fake_dataset(n_sims=n, n_time=n_time, n_segments=n_segments, seed=seed, rate_hz=10.0 + 15.0 * i)
        ds = ds.assign_coords(sim=sims[start: start + n]).assign(seed=("sim", sims[start: start + n]))
        if extra_vars:
            ds["nexus_voltage"] = ds["soma_voltage"] - 1.0
            ds["dendritic_voltage"] = (("sim", "time", "segment"),
                                       np.repeat(ds["soma_voltage"].values[..., None], 4, axis=2).astype(np.float16))
        prov = json.loads(ds.attrs["provenance"])
        prov["timing"] = {"neuron_wall_s": 0.5 * (i + 1), "input_draw_s": 0.25}
        ds.attrs["provenance"] = json.dumps(prov, sort_keys=True)
        paths.append(dataset.write_store(ds, root / f"shard-{i}.zarr"))
        start += n
    return paths


def in_memory_concat(paths, out):
    """The consolidation before streaming, as the reference: load every shard, concatenate, sort, write_store.

    Variable encodings are dropped before writing: the old code let the first shard's chunking leak into the
    sim-long arrays, whereas write_store of a freshly built dataset (the layout to preserve) lets zarr choose.
    """
    parts = [dataset.open_dataset(p).load() for p in paths]
    n_spike = max(ds.sizes["spike"] for ds in parts)
    parts = [ds.pad(spike=(0, n_spike - ds.sizes["spike"]), constant_values=np.nan) for ds in parts]
    merged = xr.concat(parts, dim="sim", data_vars="all", coords="minimal", compat="override", join="outer",
                       fill_value={"output_spike_times": np.nan}).sortby("sim")
    merged.attrs = dict(parts[0].attrs)
    prov = json.loads(parts[0].attrs["provenance"])
    prov["timing"] = {key: sum(json.loads(ds.attrs["provenance"])["timing"][key] for ds in parts)
                      for key in prov["timing"]}
    merged.attrs["provenance"] = json.dumps(prov, sort_keys=True)
    for var in merged.variables.values():
        var.encoding = {}
    return dataset.write_store(merged, out)


def array_metadata(store):
    """zarr.json of the store and of every array in it, by name ('' for the root group), the root without its
    consolidated copy of the arrays' metadata (checked to equal their own zarr.json)."""
    meta = {p.parent.relative_to(store).as_posix() if p.parent != store else "": json.loads(p.read_text())
            for p in store.rglob("zarr.json")}
    consolidated = meta[""].pop("consolidated_metadata")["metadata"]
    assert consolidated == {name: meta[name] for name in consolidated}
    return meta


@pytest.mark.parametrize("sim_chunk", [None, 3])
def test_streaming_concat_equals_in_memory_concat(tmp_path, monkeypatch, sim_chunk):
    paths = write_shards(tmp_path, [2, 1, 3, 2, 1, 3, 2, 2, 1, 3, 2, 2], extra_vars=True)
    reference = in_memory_concat(paths, tmp_path / "reference.zarr")
    if sim_chunk is not None:
        # Several output chunks along sim, each filled by interleaved shards: exercises the block writer.
        monkeypatch.setattr(shards, "_auto_chunks", lambda shape, dtype: (sim_chunk, *shape[1:]))
    out = shards.concat_stores(paths[::-1], tmp_path / "all.zarr")
    ref, got = dataset.open_dataset(reference).load(), dataset.open_dataset(out).load()
    assert got.sizes["sim"] == 24 and got["sim"].values.tolist() == list(range(24))
    assert got.sizes["spike"] == max(dataset.open_dataset(p).sizes["spike"] for p in paths) > 1
    xr.testing.assert_identical(got, ref)
    assert {n: v.dtype for n, v in got.variables.items()} == {n: v.dtype for n, v in ref.variables.items()}
    assert json.loads(got.attrs["provenance"])["timing"] == pytest.approx({"neuron_wall_s": 39.0, "input_draw_s": 3.0})
    meta, ref_meta = array_metadata(out), array_metadata(reference)
    if sim_chunk is None:
        assert meta == ref_meta
    else:
        for name in ("seed", "output_spike_times"):
            assert meta[name]["chunk_grid"]["configuration"]["chunk_shape"][0] == sim_chunk
        assert {k: v for k, v in meta.items() if k not in ("seed", "output_spike_times")} == \
            {k: v for k, v in ref_meta.items() if k not in ("seed", "output_spike_times")}


def test_streaming_concat_memory_is_bounded_by_a_shard(tmp_path):
    """8 shards of 4 MB (uint8 input spikes): consolidating them peaks below half of what they hold together (about
    9.5 MB, two threads' chunks in flight), while the in-memory consolidation, measured the same way, holds more
    than all of it."""
    import tracemalloc

    import dask

    paths = write_shards(tmp_path, [2] * 8, n_time=2000, n_segments=500)
    total = sum(dataset.open_dataset(p)["input_spikes"].nbytes for p in paths)
    # Imports made on first use (dask's scheduler pulls in distributed) would count as consolidation memory.
    shards.concat_stores(paths[:1], tmp_path / "warm-up.zarr")

    def peak(consolidate, out):
        tracemalloc.start()
        try:
            consolidate(paths, out)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # Chunks in flight scale with dask's threads; two make the bound independent of this machine's cores.
    with dask.config.set(num_workers=2):
        streamed = peak(shards.concat_stores, tmp_path / "streamed.zarr")
    in_memory = peak(in_memory_concat, tmp_path / "in-memory.zarr")
    assert in_memory > total
    assert streamed < total / 2
    xr.testing.assert_identical(dataset.open_dataset(tmp_path / "streamed.zarr").load(),
                                dataset.open_dataset(tmp_path / "in-memory.zarr").load())


def test_concat_out_of_disk_leaves_shards_and_no_partial_store(tmp_path, monkeypatch):
    paths = write_shards(tmp_path, [2, 2, 2, 2])
    before = {p: p.read_bytes() for shard in paths for p in shard.rglob("*") if p.is_file()}
    real_to_zarr = xr.Dataset.to_zarr
    calls = []

    def disk_fills_up(self, store, *args, **kwargs):
        calls.append(store)
        if kwargs.get("region") is not None and len(calls) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(store))
        return real_to_zarr(self, store, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_zarr", disk_fills_up)
    with pytest.raises(OSError) as info:
        shards.concat_stores(paths, tmp_path / "all.zarr")
    assert info.value.errno == errno.ENOSPC and len(calls) == 4
    assert not (tmp_path / "all.zarr").exists() and not list(tmp_path.glob(".all.zarr.*"))
    assert {p: p.read_bytes() for shard in paths for p in shard.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    out = shards.concat_stores(paths, tmp_path / "all.zarr")
    with pytest.raises(dataset.StoreError, match="already exists"):
        shards.concat_stores(paths, out)
    xr.testing.assert_identical(dataset.open_dataset(out).load(),
                                dataset.open_dataset(in_memory_concat(paths, tmp_path / "ref.zarr")).load())
