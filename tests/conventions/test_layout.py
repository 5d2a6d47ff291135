"""conventions.layout: channel identity from synapse coordinates, its JSON round trip and the channel mapping."""

import json

import numpy as np
import pytest

from conventions.layout import LayoutError, SynapseLayout, channel_index

NEURONIO = SynapseLayout(("d[0]", "d[1]", "a[0]", "d[0]", "d[1]", "a[0]"), ("exc",) * 3 + ("inh",) * 3)


def test_json_round_trip_and_signs():
    saved = json.loads(json.dumps(NEURONIO.to_dict()))
    assert SynapseLayout.from_dict(saved) == NEURONIO
    np.testing.assert_array_equal(NEURONIO.signs, [1, 1, 1, -1, -1, -1])
    assert NEURONIO.n_channels == 6


def test_from_dataset_reads_any_string_dtype():
    segments = np.array(["d[0]", "d[0]"], dtype=np.dtypes.StringDType())
    kinds = np.array(["exc", "inh"], dtype=object)

    class Coord:
        def __init__(self, values):
            self.values = values

    layout = SynapseLayout.from_dataset({"synapse_segment": Coord(segments), "synapse_kind": Coord(kinds)})
    assert layout == SynapseLayout(("d[0]", "d[0]"), ("exc", "inh"))


def test_identity_counts_repeated_synapses_of_one_kind_on_one_segment():
    layout = SynapseLayout(("s", "s", "t", "s"), ("exc", "exc", "exc", "inh"))
    assert layout.identities() == [("s", "exc", 0), ("s", "exc", 1), ("t", "exc", 0), ("s", "inh", 0)]


def test_channel_index_maps_a_permuted_store():
    perm = np.array([4, 0, 5, 2, 1, 3])
    store = NEURONIO.select(perm)
    index = channel_index(NEURONIO, store)
    assert store.select(index) == NEURONIO
    np.testing.assert_array_equal(perm[index], np.arange(6))
    np.testing.assert_array_equal(channel_index(NEURONIO, NEURONIO), np.arange(6))


def test_a_store_lacking_channels_is_refused_in_one_line():
    smaller = NEURONIO.select(np.array([0, 1, 3, 4]))
    with pytest.raises(LayoutError) as info:
        channel_index(NEURONIO, smaller)
    assert str(info.value) == "the store lacks 2 of the run's 6 channels, e.g. a[0] exc"
    with pytest.raises(LayoutError, match="the store has 2 channels the run was not trained on, e.g. a\\[0\\] exc"):
        channel_index(smaller, NEURONIO)


def test_exc_inh_pairs_by_segment():
    np.testing.assert_array_equal(NEURONIO.exc_inh_pairs(), [[0, 3], [1, 4], [2, 5]])
    shuffled = NEURONIO.select(np.array([3, 1, 5, 0, 4, 2]))  # inh d[0], exc d[1], inh a[0], exc d[0], ...
    pairs = shuffled.exc_inh_pairs()
    for exc, inh in pairs:
        assert shuffled.segments[exc] == shuffled.segments[inh]
        assert (shuffled.kinds[exc], shuffled.kinds[inh]) == ("exc", "inh")
    with pytest.raises(LayoutError, match="no inhibitory partner"):
        SynapseLayout(("d[0]", "d[1]"), ("exc", "inh")).exc_inh_pairs()


def test_malformed_layouts_are_refused():
    with pytest.raises(LayoutError, match="'exc' or 'inh'"):
        SynapseLayout(("d[0]",), ("ampa",))
    with pytest.raises(LayoutError, match="one kind per segment"):
        SynapseLayout(("d[0]", "d[1]"), ("exc",))
    with pytest.raises(LayoutError, match="'segments' and 'kinds'"):
        SynapseLayout.from_dict({"segments": []})
