"""Figures that tell the truth: the size trade-off keeps its legend off the data."""

from pathlib import Path

from analysis import plots


def test_tradeoff_legend_lies_outside_both_panels(monkeypatch, tmp_path):
    kept = {}

    def keep(fig, path):
        fig.canvas.draw()
        kept["fig"] = fig
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    runs = [{"name": "branch-elm", "params": 8002, "auc": 0.96, "rmse_mV": 1.1},
            {"name": "tcn", "params": 1_250_000, "auc": 0.88, "rmse_mV": 2.1}]
    plots.plot_cost_tradeoff(runs, tmp_path / "tradeoff.png")
    fig = kept["fig"]
    renderer = fig.canvas.get_renderer()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert {t.get_text() for t in legend.get_texts()} >= {"branch-elm", "tcn"}
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer))


def test_a_model_family_keeps_its_colour_whatever_the_order_of_the_runs():
    report = plots._colors(["branch-elm_sims01200", "tcn_sims01200", "lstm_sims01200"])
    curve = plots._colors(["branch-elm", "lstm", "tcn"])
    assert report["lstm_sims01200"] == curve["lstm"] and report["tcn_sims01200"] == curve["tcn"]
    assert curve["branch-elm"] != plots._colors(["elm"])["elm"]  # "elm" is not read inside "branch-elm"
    mixed = plots._colors(["tcn_a", "tcn_b", "my-model"])
    assert len(set(mixed.values())) == 3  # a second run of a family and an unknown name get colours of their own
