import json

import numpy as np
import pandas as pd
import pytest

from biophys.inputs import InputConfig, draw_inputs, draw_rates, draw_spikes, gaussian_window, n_bins


def l5pc_like_segments(seed: int = 0) -> pd.DataFrame:
    """639 segments (262 basal, 377 apical) with L5PC-like lengths (µm)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "tree": ["basal"] * 262 + ["apical"] * 377,
        "length_um": np.r_[rng.uniform(5, 35, 262), rng.uniform(5, 35, 377)],
    })


def test_defaults_are_the_published_protocol():
    cfg = InputConfig()
    assert cfg.exc_spikes_per_100ms == {"basal": (0.0, 800.0), "apical": (0.0, 800.0)}
    assert (cfg.inh_offset_low_per_100ms, cfg.inh_offset_high_per_100ms) == (-600.0, 200.0)
    assert len(cfg.block_ms_choices) == 18 and cfg.block_ms_choices[-1] == 450
    assert len(cfg.sigma_ms_choices) == 14 and cfg.sigma_ms_choices[-1] == 600
    assert cfg.length_offset_um == 10.0 and cfg.segment_factor_range == (0.5, 1.5)
    # JSON round trip: lists come back as tuples and compare equal
    assert InputConfig(**json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("kwargs, message", [
    ({"exc_spikes_per_100ms": {"basal": (-5, 100)}}, "negative"),
    ({"exc_spikes_per_100ms": {"basal": (100, 50)}}, "low ≤ high"),
    ({"exc_spikes_per_100ms": {"basal": (0, 100)}, "inh_offset_high_per_100ms": -10}, "no valid inhibitory"),
    ({"inh_offset_low_per_100ms": 300.0}, "exceeds"),
    ({"block_ms_choices": (10, 50)}, "≥ 1 ms"),
    ({"sigma_ms_choices": (20,)}, "σ must stay > 0"),
    ({"sigma_ms_choices": ()}, "non-empty"),
    ({"segment_factor_range": (1.5,)}, "pair"),
    ({"length_offset_um": -1}, "cannot be negative"),
    ({"window_sigmas": "7"}, "finite number"),
    ({"smoothing_edges": "reflect"}, "smoothing_edges"),
])
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputConfig(**kwargs)


def test_bad_segments_and_duration():
    cfg = InputConfig()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no rate range"):
        draw_inputs(cfg, pd.DataFrame({"tree": ["oblique"], "length_um": [10.0]}), 100, rng)
    with pytest.raises(ValueError, match="lacks columns"):
        draw_inputs(cfg, pd.DataFrame({"tree": ["basal"]}), 100, rng)
    with pytest.raises(ValueError, match="whole number"):
        n_bins(100.5)


def test_shape_order_and_determinism():
    seg = l5pc_like_segments()
    cfg = InputConfig()
    a = draw_inputs(cfg, seg, 1500, np.random.default_rng(np.random.SeedSequence((3, 7))))
    b = draw_inputs(cfg, seg, 1500, np.random.default_rng(np.random.SeedSequence((3, 7))))
    c = draw_inputs(cfg, seg, 1500, np.random.default_rng(np.random.SeedSequence((3, 8))))
    assert a.shape == (1278, 1500) and a.dtype == np.uint8 and a.max() == 1
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # draw_inputs is exactly rates then spikes from one generator
    rng = np.random.default_rng(np.random.SeedSequence((3, 7)))
    assert np.array_equal(a, draw_spikes(draw_rates(cfg, seg, 1500, rng).rate_per_ms, rng))


def test_gaussian_window():
    w = gaussian_window(40.0, 7.0)
    assert len(w) == 281 and w.sum() == pytest.approx(1.0)
    assert np.argmax(w) == 140 and np.allclose(w, w[::-1])
    # ±σ from the centre the window is e^(−1/2) of its peak
    assert w[180] / w[140] == pytest.approx(np.exp(-0.5))


def test_realised_rates_follow_drawn_per_tree_rates():
    """Spike counts per tree per 100 ms match the drawn block rates, inhibition included (60 s of input)."""
    seg = l5pc_like_segments()
    cfg = InputConfig(block_ms_choices=(200,), block_jitter_ms=0, sigma_ms_choices=(25,), sigma_jitter_ms=0)
    rng = np.random.default_rng(11)
    rates = draw_rates(cfg, seg, 60_000, rng)
    spikes = draw_spikes(rates.rate_per_ms, rng)
    inside = (rates.block_start_ms >= 0) & (rates.block_start_ms + rates.block_ms <= 60_000)
    basal = np.r_[seg["tree"] == "basal", np.zeros(639, bool)]
    apical_inh = np.r_[np.zeros(639, bool), seg["tree"] == "apical"]
    for rows, drawn in ((basal, rates.exc_per_100ms[0]), (apical_inh, rates.inh_per_100ms[1])):
        # expected spikes per 100 ms from the drawn tree rates, over the whole run (blocks at the edges overlap)
        expected = drawn[inside].mean()
        realised = spikes[rows].sum() / 600.0
        # p ~ Exp(rate) thresholded at 1 spikes with probability r(1 − e^{−1/r}) < r: ~1–2 % below at these rates
        assert realised == pytest.approx(expected, rel=0.06)
        assert realised < expected * 1.01
    # the smoothed channel rates carry the per-tree totals: Σ over basal exc channels ≈ drawn / 100 per ms
    block = np.flatnonzero(inside)[10]
    t = rates.block_start_ms[block] + rates.block_ms // 2
    total = rates.rate_per_ms[basal, t].sum() * 100.0
    assert total == pytest.approx(rates.exc_per_100ms[0, block], rel=0.2)
    # global realised rates are those of the published protocol (~12 Hz exc, ~9 Hz inh)
    assert 8 < spikes[:639].mean() * 1000 < 16 and 5 < spikes[639:].mean() * 1000 < 13


def test_inhibition_tracks_excitation_within_bounds():
    seg = l5pc_like_segments()
    cfg = InputConfig()
    exc, inh = [], []
    for seed in range(10):
        rates = draw_rates(cfg, seg, 6000, np.random.default_rng(seed))
        exc.append(rates.exc_per_100ms.ravel())
        inh.append(rates.inh_per_100ms.ravel())
    exc, inh = np.concatenate(exc), np.concatenate(inh)
    assert np.all(exc >= 0) and np.all(exc <= 800)
    low, high = np.maximum(0, exc - 600), exc + 200
    assert np.all(inh >= low) and np.all(inh <= high)
    # uniform within the bounds: centred on the midpoint, spread (high − low)/√12
    assert np.mean((inh - (low + high) / 2) / (high - low)) == pytest.approx(0.0, abs=0.03)
    assert np.std((inh - (low + high) / 2) / (high - low)) == pytest.approx(12 ** -0.5, rel=0.1)
    assert np.corrcoef(exc, inh)[0, 1] > 0.5


def test_block_structure_and_length_scaling():
    """Without smoothing, rates are constant within blocks, scale with length + 10 µm and vary by factor."""
    seg = pd.DataFrame({"tree": ["basal"] * 4 + ["apical"] * 2, "length_um": [0.0, 10.0, 30.0, 10.0, 5.0, 5.0]})
    cfg = InputConfig(block_ms_choices=(40,), block_jitter_ms=0, sigma_ms_choices=(0.01,), sigma_jitter_ms=0,
                      segment_factor_range=(1.0, 1.0), smoothing_edges="zero")
    rates = draw_rates(cfg, seg, 400, np.random.default_rng(5))
    assert rates.block_ms == 40 and rates.window_ms == 1 and rates.exc_per_100ms.shape == (2, 10)
    r = rates.rate_per_ms
    assert np.all(r[:, 0:40] == r[:, [0]]) and np.all(r[:, 40:80] == r[:, [40]])
    assert not np.allclose(r[0, 0], r[0, 40])
    # adjusted lengths 10, 20, 40, 20 µm of Σ 90 µm: shares 1/9, 2/9, 4/9, 2/9 of the tree's rate
    per_ms = rates.exc_per_100ms[0, 0] / 100.0
    assert r[:4, 0] == pytest.approx(per_ms * np.array([1, 2, 4, 2]) / 9, rel=1e-5)
    assert r[4, 0] == pytest.approx(rates.exc_per_100ms[1, 0] / 200.0, rel=1e-5)
    assert r[6, 0] == pytest.approx(rates.inh_per_100ms[0, 0] / 900.0, rel=1e-5)


def test_block_and_sigma_draws_cover_choices_with_jitter():
    seg = l5pc_like_segments()
    cfg = InputConfig(block_ms_choices=(100,), sigma_ms_choices=(300,))
    blocks, sigmas = [], []
    for seed in range(40):
        rates = draw_rates(cfg, seg.iloc[:5], 100, np.random.default_rng(seed))
        blocks.append(rates.block_ms)
        sigmas.append(rates.sigma_ms)
        assert rates.window_ms == int(round(1 + 7 * rates.sigma_ms))
    assert 80 <= min(blocks) < 90 and 110 < max(blocks) <= 120 and all(isinstance(b, int) for b in blocks)
    assert 280 <= min(sigmas) < 290 and 310 < max(sigmas) <= 320


def test_edges_extend_vs_zero():
    """Zero padding (the original's) halves the rate at t = 0; extended blocks keep it stationary."""
    seg = l5pc_like_segments().iloc[200:300]
    kw = dict(block_ms_choices=(50,), block_jitter_ms=0, sigma_ms_choices=(200,), sigma_jitter_ms=0)
    starts = {}
    for mode in ("extend", "zero"):
        totals = []
        for seed in range(30):
            r = draw_rates(InputConfig(smoothing_edges=mode, **kw), seg, 3000, np.random.default_rng(seed))
            totals.append(r.rate_per_ms[:100].sum(axis=0))
        totals = np.mean(totals, axis=0)
        starts[mode] = totals[0] / totals[1400:1600].mean()
    assert starts["zero"] == pytest.approx(0.5, abs=0.1)
    assert starts["extend"] == pytest.approx(1.0, abs=0.15)
