from analysis.report_tables import LEARNED_AUC, learning_notes, lookup


def test_runs_that_have_not_learned_get_one_line_each():
    results = [{"spike_auc": 0.97, "explained_variance": 0.8, "epochs_trained": 15},
               {"spike_auc": LEARNED_AUC - 0.07, "explained_variance": 0.4, "epochs_trained": 15},
               {"spike_auc": None, "explained_variance": -0.1, "epochs_trained": 3, "published": None}]
    notes = learning_notes(["belm", "tcn", "lstm"], results)
    assert len(notes) == 2
    assert notes[0].startswith("- tcn has not learned to predict spikes (AUC 0.530, chance 0.5)")
    assert "the somatic voltage (explained variance -0.100)" in notes[1] and "(3 epochs)" in notes[1]


def test_lookup_walks_nested_keys():
    assert lookup({"test": {"spike_auc": 0.9}}, ("test", "spike_auc")) == 0.9
    assert lookup({"test": None}, ("test", "spike_auc")) is None
