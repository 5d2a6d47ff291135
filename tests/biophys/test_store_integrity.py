"""Damaged stores are never read silently: the manifest, the checks on open, and ``inspect``."""

import argparse
import json
import warnings

import numpy as np
import pytest
import xarray as xr

from biophys import dataset
from biophys.cli import inspect as cli_inspect
from biophys.storefiles import MANIFEST, manifest_path, manifest_problems
from fakes import fake_dataset, fake_store


def inspect(store, capsys):
    parser = argparse.ArgumentParser()
    cli_inspect.register_cli(parser.add_subparsers())
    args = parser.parse_args(["inspect", str(store)])
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def chunk(store, name, index):
    return store / name / "c" / "/".join(str(i) for i in index)


def test_store_has_a_manifest_of_every_file(tmp_path, capsys):
    store = fake_store(tmp_path / "s.zarr", n_sims=4, n_time=300, n_segments=3)
    manifest = json.loads(manifest_path(store).read_text())
    files = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(manifest["files"]) == files and manifest["algorithm"] == "blake2b-128"
    assert manifest_problems(store, content=True) == []
    rc, out, err = inspect(store, capsys)
    assert rc == 0 and err == "" and "every file matches its size and checksum" in out


def test_deleted_chunk_is_refused_by_open_and_inspect(tmp_path, capsys):
    store = fake_store(tmp_path / "s.zarr", n_sims=4, n_time=300, n_segments=3)
    chunk(store, "input_spikes", (1, 0, 0)).unlink()
    with pytest.raises(dataset.StoreError, match=r"input_spikes/c/1/0/0 is missing"):
        dataset.NeuronIOStore(store)
    rc, out, err = inspect(store, capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1 and "input_spikes/c/1/0/0 is missing" in err


def test_truncated_chunk_is_refused_in_one_line(tmp_path, capsys):
    store = fake_store(tmp_path / "s.zarr", n_sims=4, n_time=300, n_segments=3)
    path = chunk(store, "soma_voltage", (2, 0))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(dataset.StoreError, match=r"soma_voltage/c/2/0 has 100 bytes"):
        dataset.open_dataset(store)
    rc, out, err = inspect(store, capsys)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err and "soma_voltage/c/2/0" in err


def test_same_size_corruption_is_found_by_inspect(tmp_path, capsys):
    store = fake_store(tmp_path / "s.zarr", n_sims=4, n_time=300, n_segments=3)
    path = chunk(store, "input_spikes", (3, 0, 0))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    dataset.open_dataset(store)  # the cheap check on open reads sizes only
    rc, out, err = inspect(store, capsys)
    assert rc == 1 and out == "" and err.count("\n") == 1
    assert "input_spikes/c/3/0/0 differs from its checksum" in err


def test_store_without_manifest_opens_and_undecodable_chunks_are_named(tmp_path, capsys):
    store = fake_store(tmp_path / "s.zarr", n_sims=4, n_time=300, n_segments=3)
    manifest_path(store).unlink()
    assert dataset.NeuronIOStore(store).n_sims == 4
    rc, out, err = inspect(store, capsys)
    assert rc == 0 and "no manifest" in out
    path = chunk(store, "soma_voltage", (2, 0))
    path.write_bytes(path.read_bytes()[:100])
    rc, out, err = inspect(store, capsys)
    assert rc == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "simulation 2: data cannot be read: chunk(s) soma_voltage/c/2/0" in err
    with pytest.raises(dataset.StoreError, match="data cannot be decoded"):
        dataset.NeuronIOStore(store).load()


def test_plain_xarray_opens_without_warning_and_strings_are_numpy(tmp_path):
    ds = fake_dataset(n_sims=2, n_time=200, n_segments=3)
    store = dataset.write_store(ds, tmp_path / "s.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(store)
    assert np.asarray(plain.synapse_kind).astype(str).tolist() == ["exc"] * 3 + ["inh"] * 3
    assert plain.synapse_segment.dtype.kind == "U"
    back = dataset.open_dataset(store).load()
    xr.testing.assert_identical(back, ds)
    xr.testing.assert_identical(plain.load(), back)


def test_same_size_corruption_is_refused_when_read(tmp_path):
    store = fake_store(tmp_path / "s.zarr", n_sims=4, n_time=300, n_segments=3)
    for name, index in (("soma_voltage", (1, 0)), ("input_spikes", (1, 0, 0))):
        path = chunk(store, name, index)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF   # still decodes (zstd keeps no checksum), to different values
        path.write_bytes(bytes(data))
    reader = dataset.NeuronIOStore(store)
    assert reader.soma_voltage(0).shape == (300,)
    with pytest.raises(dataset.StoreError, match=r"soma_voltage/c/1/0 differs from its checksum"):
        reader.soma_voltage(1)
    with pytest.raises(dataset.StoreError, match=r"input_spikes/c/1/0/0 differs from its checksum"):
        reader.read_input_spikes(1, 0, 100)
    with pytest.raises(dataset.StoreError, match=r"differs from its checksum"):
        reader.load()
