import argparse
import pickle

import numpy as np
import pandas as pd
import pytest

from biophys import dataset, neuronio_format
from biophys.cli import neuronio as neuronio_cli
from biophys.neuronio_format import NeuronIOFormatError, import_neuronio
from cell_helpers import params_dict, simulation_dict, write_pickle

REFERENCE = "reference_traces/original_l5pc_neuronio_seed77.p"


def small_segments() -> pd.DataFrame:
    """5 segments: basal sections 0 (2 segments) and 1 (1), apical section 2 (2 segments)."""
    return pd.DataFrame({"tree": ["basal", "basal", "basal", "apical", "apical"],
                         "length_um": [10.0, 10.0, 25.0, 20.0, 20.0],
                         "distance_um": [5.0, 15.0, 12.5, 10.0, 30.0],
                         "section_index": [0, 0, 1, 2, 2]})


def small_file(path, n_sims=2, n_time=50, seed=0, dendrites=False):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((n_sims, 10, n_time)) < 0.1).astype(np.uint8)
    soma = -70 + 5 * rng.standard_normal((n_sims, n_time))
    out_times = [np.array([12.3, 40.6]), np.array([])][:n_sims] + [np.array([7.0])] * max(0, n_sims - 2)
    sims = [simulation_dict(spikes[i], soma[i], out_times[i], nexus_mV=soma[i] + 1,
                            dendritic_mV=np.tile(soma[i], (5, 1)) if dendrites else None) for i in range(n_sims)]
    write_pickle(path, params_dict(small_segments(), n_time, n_sims, seed), sims)
    return spikes, soma, out_times


def test_round_trip_small_files(tmp_path):
    spikes_a, soma_a, times_a = small_file(tmp_path / "a.p", seed=1, dendrites=True)
    spikes_b, soma_b, _ = small_file(tmp_path / "b.p", n_sims=3, seed=2, dendrites=True)
    with open(tmp_path / "a.p", "rb") as f:
        raw = pickle.load(f)
    assert raw["Results"]["listOfSingleSimulationDicts"][0]["somaVoltageLowRes"].dtype == np.float16
    out = import_neuronio([tmp_path / "a.p", tmp_path / "b.p"], tmp_path / "s.zarr")
    store = dataset.NeuronIOStore(out)
    assert (store.n_sims, store.n_time, store.n_synapses) == (5, 50, 10)
    assert np.array_equal(store.input_spikes(0), spikes_a[0].T) and np.array_equal(store.input_spikes(4), spikes_b[2].T)
    # voltages pass through float16 as in the original files (~0.03 mV steps at −70 mV)
    assert np.allclose(store.soma_voltage(1), soma_a[1], atol=0.05)
    assert np.allclose(store.spike_times(0), times_a[0], atol=0.02) and store.spike_times(1).size == 0
    assert store.ds["seed"].values.tolist() == [neuronio_format.UNKNOWN_SEED] * 5
    assert store.ds["dendritic_voltage"].shape == (5, 50, 5)
    syn = store.synapses()
    assert syn["sign"].tolist() == [1] * 5 + [-1] * 5 and syn["tree"].tolist()[:5] == ["basal"] * 3 + ["apical"] * 2
    assert syn["section"].tolist()[:5] == ["dend[0]", "dend[0]", "dend[1]", "apic[0]", "apic[0]"]
    assert syn["x"].tolist()[:5] == [0.25, 0.75, 0.5, 0.25, 0.75]
    assert syn["segment"][2] == "dend[1](0.5)" and syn["length_um"][2] == 25.0
    assert syn["pos_x_um"].isna().all()
    assert [f["n_sims"] for f in store.config["files"]] == [2, 3]


def test_missing_metadata_becomes_nan(tmp_path):
    small_file(tmp_path / "a.p")
    with open(tmp_path / "a.p", "rb") as f:
        data = pickle.load(f)
    for key in ("allSegmentsLength", "allSegments_DistFromSoma", "allSegments_SectionInd"):
        del data["Params"][key]
    data["Results"]["listOfSingleSimulationDicts"][0]["exInputSpikeTimes"].pop(0, None)
    write_pickle(tmp_path / "b.p", data["Params"], data["Results"]["listOfSingleSimulationDicts"])
    store = dataset.NeuronIOStore(import_neuronio([tmp_path / "b.p"], tmp_path / "s.zarr"))
    syn = store.synapses()
    assert syn["length_um"].isna().all() and syn["distance_um"].isna().all() and syn["x"].isna().all()
    assert syn["section"].eq("unknown").all() and syn["segment"][3] == "segment[3]"
    assert store.input_spikes(0)[:, 0].sum() == 0


def _mutated(tmp_path, mutate):
    small_file(tmp_path / "a.p")
    with open(tmp_path / "a.p", "rb") as f:
        data = pickle.load(f)
    mutate(data)
    with open(tmp_path / "bad.p", "wb") as f:
        pickle.dump(data, f, protocol=2)
    return tmp_path / "bad.p"


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("Params"), r"bad\.p: missing key 'Params'"),
    (lambda d: d["Params"].pop("allSegmentsType"), r"bad\.p: missing key 'Params' → 'allSegmentsType'"),
    (lambda d: d["Results"].pop("listOfSingleSimulationDicts"), "listOfSingleSimulationDicts"),
    (lambda d: d["Results"]["listOfSingleSimulationDicts"][1].pop("somaVoltageLowRes"),
     r"bad\.p: simulation 1 is missing key 'somaVoltageLowRes'"),
    (lambda d: d["Results"]["listOfSingleSimulationDicts"][0].pop("inhInputSpikeTimes"), "'inhInputSpikeTimes'"),
    (lambda d: d["Params"].__setitem__("allSegmentsLength", [1.0, 2.0]), "has 2 entries, expected 5"),
    (lambda d: d["Params"]["allSegmentsType"].__setitem__(0, "oblique"), "'oblique'"),
    (lambda d: d["Results"]["listOfSingleSimulationDicts"][0]["exInputSpikeTimes"].__setitem__(9, np.array([1.0])),
     "has segment 9"),
    (lambda d: d["Results"]["listOfSingleSimulationDicts"][0]["exInputSpikeTimes"].__setitem__(1, np.array([50.0])),
     r"outside \[0, 50\) ms"),
])
def test_malformed_files_name_file_and_key(tmp_path, mutate, message):
    with pytest.raises(NeuronIOFormatError, match=message):
        import_neuronio([_mutated(tmp_path, mutate)], tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_not_a_pickle_and_mismatched_files(tmp_path):
    (tmp_path / "junk.p").write_bytes(b"not a pickle")
    with pytest.raises(NeuronIOFormatError, match=r"junk\.p: cannot read as a pickle"):
        import_neuronio([tmp_path / "junk.p"], tmp_path / "s.zarr")
    small_file(tmp_path / "a.p", n_time=50)
    small_file(tmp_path / "b.p", n_time=60)
    with pytest.raises(NeuronIOFormatError, match="last 60 ms"):
        import_neuronio([tmp_path / "a.p", tmp_path / "b.p"], tmp_path / "s.zarr")


def test_gzip_pickle_imports_like_the_plain_one(tmp_path):
    import gzip

    small_file(tmp_path / "a.p")
    (tmp_path / "a.p.gz").write_bytes(gzip.compress((tmp_path / "a.p").read_bytes()))
    plain = dataset.NeuronIOStore(import_neuronio([tmp_path / "a.p"], tmp_path / "p.zarr")).load()
    packed = dataset.NeuronIOStore(import_neuronio([tmp_path / "a.p.gz"], tmp_path / "z.zarr")).load()
    for name in ("input_spikes", "soma_voltage", "output_spike_times"):
        np.testing.assert_array_equal(plain.ds[name].values, packed.ds[name].values)


def test_duplicate_files_are_refused(tmp_path):
    small_file(tmp_path / "a.p")
    (tmp_path / "copy.p").write_bytes((tmp_path / "a.p").read_bytes())
    for files in ([tmp_path / "a.p", tmp_path / "a.p"], [tmp_path / "a.p", tmp_path / "copy.p"]):
        with pytest.raises(NeuronIOFormatError, match="the same file as") as info:
            import_neuronio(files, tmp_path / "s.zarr")
        assert "\n" not in str(info.value)
    assert not (tmp_path / "s.zarr").exists()


def test_inputs_of_a_pickle_keep_exact_times_and_name_bad_files(tmp_path):
    import gzip

    from biophys.neuronio_format import read_inputs

    small_file(tmp_path / "a.p")
    (tmp_path / "a.p.gz").write_bytes(gzip.compress((tmp_path / "a.p").read_bytes()))
    plain, packed = read_inputs(tmp_path / "a.p"), read_inputs(tmp_path / "a.p.gz")
    assert plain.duration_ms == 50 and len(plain.spike_times) == 2 and len(plain.spike_times[0]) == 10
    for a, b in zip(plain.spike_times[1], packed.spike_times[1]):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "list.p").write_bytes(pickle.dumps([1, 2, 3]))
    (tmp_path / "text.p").write_text("hello")
    (tmp_path / "text.gz").write_bytes(gzip.compress(b"hello"))
    for name, message in (("missing.p", "no such"), ("list.p", "expected a dict"), ("text.p", "cannot read"),
                          ("text.gz", "cannot read")):
        with pytest.raises(NeuronIOFormatError, match=message):
            read_inputs(tmp_path / name)


def test_cli(tmp_path, capsys):
    small_file(tmp_path / "a.p")
    parser = argparse.ArgumentParser()
    neuronio_cli.register_cli(parser.add_subparsers())
    args = parser.parse_args(["import-neuronio", str(tmp_path / "a.p"), "--out", str(tmp_path / "s.zarr")])
    assert args.func(args) == 0 and "simulations: 2 × 50 ms" in capsys.readouterr().out
    assert args.func(args) == 2 and "already exists" in capsys.readouterr().err


def test_reference_pickle_imports(shared_data, tmp_path):
    path = shared_data / REFERENCE
    if not path.exists():
        pytest.skip(f"{path} not present")
    store = dataset.NeuronIOStore(import_neuronio([path], tmp_path / "ref.zarr"))
    assert (store.n_sims, store.n_time, store.n_synapses) == (2, 1500, 1278)
    with open(path, "rb") as f:
        sims = pickle.load(f)["Results"]["listOfSingleSimulationDicts"]
    for i, sim in enumerate(sims):
        assert np.array_equal(store.spike_times(i), np.asarray(sim["outputSpikeTimes"], dtype=np.float64))
        n_in = sum(len(t) for key in ("exInputSpikeTimes", "inhInputSpikeTimes") for t in sim[key].values())
        assert store.input_spikes(i).sum() == n_in
        assert np.array_equal(store.soma_voltage(i), np.asarray(sim["somaVoltageLowRes"], dtype=np.float32))
    # the realised input rates of the protocol: ~12 Hz excitatory, ~9 Hz inhibitory per synapse
    spikes = store.ds["input_spikes"].values
    assert 6 < spikes[..., :639].mean() * 1000 < 18 and 4 < spikes[..., 639:].mean() * 1000 < 14
    assert store.synapses()["tree"].value_counts().to_dict() == {"apical": 754, "basal": 524}


def test_segments_are_matched_by_tree_length_and_distance():
    from biophys.neuronio_segments import SegmentMatchError, match_segments

    file_rows = small_segments().drop(columns="section_index").assign(section="unknown", x=np.nan)
    # the morphology lists the same segments; the two equal basal ones of section 0 differ only in distance
    reference = pd.DataFrame({"tree": ["basal", "basal", "basal", "apical", "apical"],
                              "segment": ["dend[0](0.25)", "dend[0](0.75)", "dend[1](0.5)", "apic[0](0.25)",
                                          "apic[0](0.75)"],
                              "section": ["dend[0]", "dend[0]", "dend[1]", "apic[0]", "apic[0]"],
                              "x": [0.25, 0.75, 0.5, 0.25, 0.75],
                              "length_um": [10.0, 10.0, 25.0, 20.0, 20.0],
                              "distance_um": [5.0 + 1e-7, 15.0, 12.5, 10.0, 30.0],
                              "pos_x_um": [1.0, 2.0, 3.0, 4.0, 5.0], "pos_y_um": 0.0, "pos_z_um": 0.0})
    order = [2, 0, 4, 1, 3]  # the morphology's rows in another order match the same way
    matched = match_segments(file_rows, reference.iloc[order].reset_index(drop=True), "'m'")
    assert matched["segment"].tolist() == reference["segment"].tolist()
    assert matched["pos_x_um"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert matched["distance_um"].tolist() == file_rows["distance_um"].tolist()  # the file's values are kept
    shifted = reference.assign(distance_um=reference["distance_um"] + [0, 0, 0.5, 0, 0])
    with pytest.raises(SegmentMatchError, match=r"^segment 2 of the file \(basal, 25.0000 µm long, 12.5000 µm from "
                                                r"the soma\) matches no segment of morphology 'm'$"):
        match_segments(file_rows, shifted, "'m'")
    with pytest.raises(SegmentMatchError, match="the file has 5 dendritic segments, morphology 'm' has 4"):
        match_segments(file_rows, reference.iloc[:4], "'m'")
    with pytest.raises(SegmentMatchError, match="lacks allSegmentsLength"):
        match_segments(file_rows.assign(length_um=np.nan), reference, "'m'")


def test_the_store_says_how_its_segments_were_named(tmp_path):
    small_file(tmp_path / "a.p")
    store = dataset.NeuronIOStore(import_neuronio([tmp_path / "a.p"], tmp_path / "s.zarr"))
    assert store.config["segment_identity"] == {"method": "allSegments_SectionInd"}
    with open(tmp_path / "a.p", "rb") as f:
        data = pickle.load(f)
    del data["Params"]["allSegments_SectionInd"]
    write_pickle(tmp_path / "b.p", data["Params"], data["Results"]["listOfSingleSimulationDicts"])
    store = dataset.NeuronIOStore(import_neuronio([tmp_path / "b.p"], tmp_path / "b.zarr"))
    assert store.config["segment_identity"] == {"method": "none"}
    assert "pass --morphology" in neuronio_format.neuronio_segments.describe_identity(store.config["segment_identity"])


@pytest.mark.neuron
def test_the_reference_pickle_gets_cell1_segment_names_by_matching(shared_data, tmp_path):
    """The shared pickle has no allSegments_SectionInd: its 639 segments are matched against cell1.asc, and
    come out as the original NeuronIO order that the published checkpoints read."""
    import subprocess
    import sys

    from surrogate.published import neuronio_layout

    out = tmp_path / "ref.zarr"
    cmd = [sys.executable, "-m", "biophys", "import-neuronio", str(shared_data / REFERENCE), "--out", str(out),
           "--morphology", str(shared_data / "morphologies" / "cell1.asc")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cell1 = (shared_data / "morphologies" / "cell1.asc").resolve()  # the message names the resolved path
    assert done.stdout.splitlines()[0] == (f"segment names: matched to morphology {str(cell1)!r} by tree, length "
                                           "and path distance (the file has no allSegments_SectionInd)")
    store = dataset.NeuronIOStore(out)
    layout = neuronio_layout()
    assert tuple(store.synapses()["segment"]) == layout.segments and tuple(store.synapses()["kind"]) == layout.kinds
    assert store.config["segment_identity"]["method"] == "matched"
    assert len(store.config["segment_identity"]["morphology_sha256"]) == 64
    assert store.synapses()["pos_x_um"].notna().all()
    bad = tmp_path / "bad.zarr"
    done = subprocess.run([*cmd[:-3], str(bad), "--morphology", "synthetic"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "morphology 'synthetic'" in done.stderr
    assert not bad.exists()


def test_cell1_is_the_default_morphology_only_when_cached(shared_data, tmp_path, monkeypatch):
    from conventions.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert neuronio_cli.default_morphology() is None
    (tmp_path / "cache" / "morphologies").mkdir(parents=True)
    (tmp_path / "cache" / "morphologies" / "cell1.asc").write_bytes(
        (shared_data / "morphologies" / "cell1.asc").read_bytes())
    assert neuronio_cli.default_morphology() == "cell1"
