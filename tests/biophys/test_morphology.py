"""Morphology data and rules, file checks, source resolution, download, and synapse placement (no NEURON)."""

import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest

from conventions.cache import CACHE_ENV
from biophys import morphology as mo
from biophys import morphology_io as mio
from biophys import synthetic
from biophys.cli import morphology as morphology_cli
from biophys import synapses
from biophys.morphology import MorphologyError
from cell_helpers import morphometrics


@pytest.mark.parametrize("length, nseg", [(0.5, 1), (39.99, 1), (40.0, 3), (79.9, 3), (80.0, 5), (276.4, 13)])
def test_nseg_rule(length, nseg):
    assert mo.nseg_for_length(length) == nseg


def test_synthetic_is_deterministic():
    a, b = synthetic.synthetic_l5pc(), synthetic.synthetic_l5pc()
    assert [s.name for s in a.sections] == [s.name for s in b.sections]
    for sa, sb in zip(a.sections, b.sections):
        np.testing.assert_array_equal(sa.points, sb.points)
        assert (sa.parent, sa.parent_x) == (sb.parent, sb.parent_x)
    assert a.provenance == {"kind": "synthetic", "generator": synthetic.SYNTHETIC_VERSION}


def test_synthetic_morphometrics_are_l5pc_like():
    morph = mo.replace_axon(synthetic.synthetic_l5pc())
    morph.validate()
    stats = morphometrics(morph)
    assert stats["n_basal_trees"] == 8
    dendritic = stats["n_segments_basal"] + stats["n_segments_apical"]
    assert 550 <= dendritic <= 650
    assert 4000 < stats["length_um_basal"] < 7000
    assert 5000 < stats["length_um_apical"] < 8500
    assert 1100 < stats["max_apical_path_um"] < 1400
    assert (stats["n_sections_soma"], stats["n_sections_axon"]) == (1, 2)
    # The apical tree rises: its tips lie far above the soma, the basal tips below ~300 µm of it.
    seg = mo.segment_table(morph)
    assert seg.loc[seg.region == "apical", "pos_y_um"].max() > 900
    assert np.abs(seg.loc[seg.region == "basal", ["pos_x_um", "pos_y_um", "pos_z_um"]].to_numpy()).max() < 400
    section, x = morph.nexus
    nexus_distance = mo.section_start_distances(morph)[section] + x * morph.by_name()[section].length_um
    assert 700 < nexus_distance < 900


def test_ball_and_stick_geometry_and_segment_table():
    morph = mo.replace_axon(synthetic.ball_and_stick())
    seg = mo.segment_table(morph)
    dend = synapses.dendritic_segments(seg)
    assert len(dend) == 27 and 10 <= len(dend) <= 30
    # Hand-computed: dend[0] is 100 µm with 5 segments from soma(0.5); apic[1] starts 200 µm up the trunk.
    np.testing.assert_allclose(seg.loc[seg.section == "dend[0]", "distance_um"], [10, 30, 50, 70, 90])
    np.testing.assert_allclose(seg.loc[seg.section == "apic[1]", "distance_um"], [210, 230, 250])
    np.testing.assert_allclose(seg.loc[seg.section == "dend[0]", "length_um"], 20.0)
    assert seg.loc[seg.section == "soma[0]", "distance_um"].item() == 0.0
    assert seg["segment"].iloc[1] == "dend[0](0.1)"


def test_replace_axon_gives_two_stubs():
    morph = mo.replace_axon(synthetic.ball_and_stick())
    axon = morph.region("axon")
    assert [(s.name, s.parent, s.parent_x) for s in axon] == [("axon[0]", "soma[0]", 0.5), ("axon[1]", "axon[0]", 1.0)]
    assert [s.length_um for s in axon] == [30.0, 30.0] and all(np.all(s.points[:, 3] == 1.0) for s in axon)
    assert morph.provenance["axon"] == "replaced"


def test_validate_names_missing_apical_tree():
    morph = synthetic.ball_and_stick()
    no_apical = mo.Morphology(tuple(s for s in morph.sections if s.region != "apical"), None, {})
    with pytest.raises(MorphologyError, match="no apical dendrite"):
        no_apical.validate()


def test_synapse_table_order_and_columns():
    morph = mo.replace_axon(synthetic.ball_and_stick())
    table = synapses.synapse_table(mo.segment_table(morph))
    assert list(table.columns) == list(synapses.COLUMNS)
    assert len(table) == 54
    assert table["sign"].tolist() == [1] * 27 + [-1] * 27
    exc, inh = table.iloc[:27], table.iloc[27:]
    assert exc["segment"].tolist() == inh["segment"].tolist()
    assert exc["section"].tolist()[:6] == ["dend[0]"] * 5 + ["dend[1]"]
    assert exc["tree"].tolist() == ["basal"] * 10 + ["apical"] * 17
    assert np.all(np.diff(exc["x"].to_numpy()[:5]) > 0)


def test_synapse_columns_match_dataset_schema():
    from biophys import dataset

    assert list(synapses.COLUMNS) == list(dataset.SYNAPSE_COLUMNS)


# --- files -----------------------------------------------------------------------------------------------------


SWC_OK = """# soma, basal, apical
1 1 0 0 0 5 -1
2 3 0 -5 0 1 1
3 3 0 -50 0 1 2
4 4 0 5 0 2 1
5 4 0 300 0 1.5 4
"""


def test_check_good_swc(tmp_path):
    path = tmp_path / "cell.swc"
    path.write_text(SWC_OK)
    assert mo.check_morphology_file(path) == "swc"


@pytest.mark.parametrize("name, text, message", [
    ("missing.asc", None, "not found"),
    ("empty.asc", "", "is empty"),
    ("cell.txt", "1 1 0 0 0 5 -1\n", "unsupported morphology format"),
    ("bad.swc", "1 1 0 0 0 5 -1\n2 3 zero 0 0 1 1\n", "malformed SWC line"),
    ("orphan.swc", "1 1 0 0 0 5 -1\n2 4 0 1 0 1 7\n", "names parent 7"),
    ("noapical.swc", "1 1 0 0 0 5 -1\n2 3 0 -5 0 1 1\n", "no apical dendrite"),
    ("open.asc", '("CellBody"\n (Closed)\n (1 2 3 4)\n', "unclosed"),
    ("extra.asc", "(Dendrite (1 2 3 4)))\n", "unbalanced"),
    ("noapical.asc", '("CellBody" (Closed) (1 2 3 4))\n((Dendrite) (1 2 3 4) (5 6 7 8))\n', "no apical dendrite"),
])
def test_bad_files_raise_clear_errors(tmp_path, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(MorphologyError, match=message):
        mo.check_morphology_file(path)


def test_resolve_order(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert mo.cache_dir() == tmp_path / "cache" / "morphologies"
    assert mio.resolve_morphology("l5pc", None).provenance["kind"] == "synthetic"
    assert mio.resolve_morphology("ball-and-stick", None).provenance["kind"] == "ball-and-stick"
    user = tmp_path / "mine.swc"
    user.write_text(SWC_OK)
    assert mio.resolve_morphology("l5pc", str(user)) == user
    with pytest.raises(MorphologyError, match="fetch-morphology"):
        mio.resolve_morphology("l5pc", "cell1")
    cached = mo.cache_dir() / mo.CELL1_NAME
    cached.parent.mkdir(parents=True)
    cached.write_text("not the real cell1.asc")
    with pytest.raises(MorphologyError, match="sha256"):
        mio.resolve_morphology("l5pc", "cell1")
    # The default never depends on what is cached.
    assert mio.resolve_morphology("l5pc", None).provenance["kind"] == "synthetic"
    with pytest.raises(MorphologyError, match="unknown cell"):
        mio.resolve_morphology("pyramid", None)


def test_resolve_uses_cached_cell1(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    cached = mo.cache_dir() / mo.CELL1_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes((shared_data / "morphologies" / "cell1.asc").read_bytes())
    assert mio.resolve_morphology("l5pc", "cell1") == cached
    assert mo.describe_morphology("l5pc", "cell1") == {"morphology": "cell1", "morphology_sha256": mo.CELL1_SHA256}
    assert mio.resolve_morphology("l5pc", None).provenance["kind"] == "synthetic"


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_fetch_checks_sha256_and_writes_atomically(tmp_path, local_server):
    root, url = local_server
    payload = b'("CellBody" (1 2 3 4))\n((Dendrite) (Apical) (1 2 3 4))\n'
    (root / "cell1.asc").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "cell1.asc"
    assert mio.fetch_morphology(f"{url}/cell1.asc", dest, digest) == dest
    assert dest.read_bytes() == payload
    assert list(dest.parent.iterdir()) == [dest]  # no temporary file left
    (root / "cell1.asc").write_bytes(b"tampered")
    other = tmp_path / "cache" / "other.asc"
    with pytest.raises(MorphologyError, match="expected"):
        mio.fetch_morphology(f"{url}/cell1.asc", other, digest)
    assert not other.exists() and list(dest.parent.iterdir()) == [dest]
    with pytest.raises(MorphologyError, match="could not download"):
        mio.fetch_morphology(f"{url}/missing.asc", other, digest)
    # An up-to-date file is kept without downloading (the server now serves something else).
    assert mio.fetch_morphology(f"{url}/cell1.asc", dest, digest) == dest


def test_fetch_cli(tmp_path, local_server, capsys):
    import argparse

    root, url = local_server
    (root / "m.asc").write_bytes(b"abc")
    parser = argparse.ArgumentParser()
    morphology_cli.register_cli(parser.add_subparsers())
    dest = tmp_path / "m.asc"
    args = parser.parse_args(["fetch-morphology", "--url", f"{url}/m.asc", "--dest", str(dest),
                              "--sha256", hashlib.sha256(b"abc").hexdigest()])
    assert args.func(args) == 0 and dest.read_bytes() == b"abc"
    args = parser.parse_args(["fetch-morphology", "--url", f"{url}/m.asc", "--dest", str(tmp_path / "x.asc"),
                              "--sha256", "0" * 64])
    assert args.func(args) == 1
    assert "expected" in capsys.readouterr().out


def test_morphology_spec_is_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert mo.morphology_spec("l5pc", None) == "synthetic"
    assert mo.morphology_spec("ball-and-stick", None) == "ball-and-stick"
    assert mo.morphology_spec("l5pc", "cell1") == "cell1"
    monkeypatch.chdir(tmp_path)
    assert mo.morphology_spec("l5pc", "mine.swc") == str(tmp_path / "mine.swc")
    for cell, spec in (("ball-and-stick", "synthetic"), ("ball-and-stick", "cell1"), ("l5pc", "ball-and-stick")):
        with pytest.raises(MorphologyError, match="built-in geometry"):
            mo.morphology_spec(cell, spec)
    from biophys.config import CellConfig

    with pytest.raises(ValueError, match="built-in geometry"):
        CellConfig(name="ball-and-stick", morphology=str(tmp_path / "mine.swc"))


def test_describe_morphology(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert mo.describe_morphology("l5pc", None) == {"morphology": "synthetic", "morphology_sha256": None}
    assert mo.describe_morphology("ball-and-stick", None) == {"morphology": "ball-and-stick",
                                                              "morphology_sha256": None}
    user = tmp_path / "mine.swc"
    user.write_text(SWC_OK)
    assert mo.describe_morphology("l5pc", str(user)) == {
        "morphology": str(user), "morphology_sha256": hashlib.sha256(SWC_OK.encode()).hexdigest()}
    for spec, message in (("cell1", "python -m biophys fetch-morphology"), (str(tmp_path / "none.asc"), "not found"),
                          (str(tmp_path / "x.txt"), "not found")):
        with pytest.raises(MorphologyError, match=message) as info:
            mo.describe_morphology("l5pc", spec)
        assert "\n" not in str(info.value)


def test_describe_morphology_imports_no_neuron():
    import subprocess
    import sys

    code = ("import sys; from biophys.morphology import describe_morphology; "
            "describe_morphology('l5pc', None); print('neuron' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
