"""biophys.validate: features on hand-made traces, trace comparison, trunk sites, config and CLI errors; and
(neuron, slow) the protocols on the full L5PC on cell1.asc against the original model (~6.5 simulated s,
about 1.5 CPU-min)."""

import json

import numpy as np
import pytest

from biophys.features import compare_traces, compare_with_range, input_resistance_MOhm, spike_features, time_above_ms
from biophys.morphology import replace_axon
from biophys.protocols import ValidationConfig, apical_trunk, trunk_site
from biophys.synthetic import ball_and_stick
from conventions.spikes import match_spikes

DT_MS = 0.025
#: The original model's spike counts for the reference 1 s somatic steps (reference_traces/README.md).
ORIGINAL_STEP_SPIKES = {0.5: 6, 0.8: 15, 1.0: 17}


def gaussian_spike_train(peaks_ms, duration_ms=1000.0, base_mV=-70.0, peak_mV=30.0, sigma_ms=0.5):
    """A flat trace at ``base_mV`` with Gaussian spikes peaking at ``peak_mV``; the width at −20 mV (half the
    100 mV height) is the FWHM 2σ·sqrt(2 ln 2)."""
    t = np.arange(0.0, duration_ms, DT_MS)
    v = np.full_like(t, base_mV)
    for p in peaks_ms:
        v += (peak_mV - base_mV) * np.exp(-0.5 * ((t - p) / sigma_ms) ** 2)
    return v


def test_spike_features_of_regular_gaussian_spikes():
    peaks = np.arange(150.0, 900.0, 50.0)  # 15 spikes at 20 Hz from t = 150 ms; stimulus from 100 ms
    v = gaussian_spike_train(peaks)
    f = spike_features(v, DT_MS, 100.0, 1000.0)
    assert f["spike_count"] == len(peaks)
    assert f["AP_height"] == pytest.approx(30.0, abs=0.05)
    assert f["AP_width"] == pytest.approx(2 * 0.5 * np.sqrt(2 * np.log(2)), abs=0.1)
    assert f["time_to_first_spike"] == pytest.approx(50.0, abs=0.2)
    assert f["ISI_CV"] == pytest.approx(0.0, abs=1e-3)
    assert f["doublet_ISI"] == pytest.approx(50.0, abs=0.1)
    assert f["AHP_depth_abs"] == pytest.approx(-70.0, abs=0.01)


def test_spike_features_without_spikes():
    f = spike_features(np.full(4000, -75.0), DT_MS, 10.0, 90.0)
    assert f["spike_count"] == 0 and f["AP_height"] is None and f["ISI_CV"] is None


def test_spike_features_rejects_bad_trace():
    with pytest.raises(ValueError, match="1-D"):
        spike_features(np.zeros((2, 100)), DT_MS, 0.0, 1.0)


def test_input_resistance_of_an_exponential_relaxation():
    # Rest −80 mV, a −0.1 nA step at 100 ms relaxing with τ = 20 ms towards −84 mV: 40 MΩ.
    t = np.arange(0.0, 600.0, DT_MS)
    v = -80.0 - 4.0 * (t >= 100.0) * (1.0 - np.exp(-np.clip(t - 100.0, 0.0, None) / 20.0))
    r = input_resistance_MOhm(v, DT_MS, (50.0, 100.0), 600.0, 50.0, -0.1)
    assert r == pytest.approx(40.0, rel=1e-6)
    with pytest.raises(ValueError, match="outside"):
        input_resistance_MOhm(v, DT_MS, (50.0, 100.0), 700.0, 50.0, -0.1)


def test_time_above():
    v = np.r_[np.full(40, -60.0), np.full(80, -10.0), np.full(40, -60.0)]
    assert time_above_ms(v, 0.125, -30.0) == 10.0


def test_compare_with_range():
    assert compare_with_range(26.0, 25.0, 3.1)["pass"]
    outside = compare_with_range(20.0, 25.0, 3.1)
    assert not outside["pass"] and outside["range"] == [21.9, 28.1] and outside["z"] == pytest.approx(-5 / 3.1)
    assert not compare_with_range(None, 25.0, 3.1)["pass"]


def test_match_spikes_is_one_to_one():
    assert match_spikes([10.0, 11.0], [10.5], 2.0) == 1
    assert match_spikes([10.0, 50.0, 100.0], [11.5, 53.0, 100.0, 200.0], 2.0) == 2
    assert match_spikes([], [1.0], 2.0) == 0


def test_compare_traces_clips_spikes_and_counts_matches():
    ref = np.full(300, -70.0)
    ref[10] = 30.0
    test = ref + 1.0
    test[10] = 20.0  # a lower spike peak is clipped away: only the 1 mV offset counts
    test[11] = 25.0  # the spike lasts one sample longer: after clipping, 15 mV on one sample of 300
    out = compare_traces(ref, test, [10.0, 50.0, 100.0], [11.5, 53.0, 100.0, 200.0])
    expected = np.sqrt((298 * 1.0 ** 2 + (-55.0 - -70.0) ** 2) / 300)
    assert out["rmse_mV"] == pytest.approx(expected)
    assert (out["matched"], out["n_ref"], out["n_test"], out["spurious"]) == (2, 3, 4, 2)
    assert out["matched_fraction"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="equal length"):
        compare_traces(ref, test[:-1], [], [])


def test_trunk_sites_on_ball_and_stick():
    morph = replace_axon(ball_and_stick())
    assert apical_trunk(morph) == ["apic[0]", "apic[1]"]
    # apic[0] is 200 µm long with 11 segments from soma(0.5): the centre of segment 5 is at 100 µm.
    assert trunk_site(morph, 100.0) == ("apic[0](0.5)", pytest.approx(100.0))
    # beyond the trunk's end: the last segment of the 60 µm tip (3 segments), centre at 200 + 50 µm.
    site, distance = trunk_site(morph, 5000.0)
    assert site == "apic[1](0.833333)" and distance == pytest.approx(250.0)


def test_epsc_waveform_peaks_at_its_amplitude():
    from biophys.stimuli import EpscCurrent

    t, i = EpscCurrent(0.5, 10.0, 0.5, 5.0).waveform(0.001)
    assert i.max() == pytest.approx(0.5, rel=1e-5)
    assert np.all(i[t < 10.0] == 0.0)
    t_peak = 0.5 * 5.0 / 4.5 * np.log(10.0)
    assert t[np.argmax(i)] == pytest.approx(10.0 + t_peak, abs=0.002)
    with pytest.raises(ValueError, match="tau_rise_ms"):
        EpscCurrent(0.5, 10.0, 5.0, 0.5)


def test_validation_config_errors():
    with pytest.raises(ValueError, match="rin_step_nA"):
        ValidationConfig(rin_step_nA=0.05)
    with pytest.raises(ValueError, match="published_steps_nA"):
        ValidationConfig(published_steps_nA=(0.5, 0.8, 2.0))
    with pytest.raises(ValueError, match=r"unknown key\(s\)"):
        ValidationConfig.from_dict({"step_amp": 1.0})
    assert ValidationConfig.from_dict(json.loads(json.dumps(ValidationConfig.quick().__dict__))) == \
        ValidationConfig.quick()


def run_validate_cli(argv):
    import argparse

    from biophys.cli import validate

    parser = argparse.ArgumentParser()
    validate.register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert run_validate_cli(["validate", "--morphology", str(tmp_path / "none.asc"),
                             "--json", str(tmp_path / "out.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_validate_cli(["validate", "--json", str(tmp_path / "missing_dir" / "out.json")]) == 2
    assert "missing_dir does not exist" in capsys.readouterr().err
    bad = tmp_path / "cell.txt"
    bad.write_text("not a morphology")
    assert run_validate_cli(["validate", "--morphology", str(bad), "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert not (tmp_path / "out.json").exists()


# --- the full cell (NEURON) ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cell1_validation(shared_data):
    """validate_cell on cell1.asc with the reference's 1 s steps (0.5 / 0.8 / 1.0 nA), once for the module."""
    from biophys.config import CellConfig, SimConfig
    from biophys.protocols import validate_cell

    morphology = shared_data / "morphologies" / "cell1.asc"
    if not morphology.is_file():
        pytest.skip(f"cell1.asc not found at {morphology}")
    return validate_cell(CellConfig(morphology=str(morphology)), SimConfig(), config=ValidationConfig.quick())


@pytest.mark.neuron
@pytest.mark.slow
def test_rest_and_input_resistance(cell1_validation):
    rest = cell1_validation["rest"]
    assert rest["rest_mV"] == pytest.approx(-81.0, abs=2.0)
    assert rest["nexus_rest_mV"] == pytest.approx(-76.0, abs=2.0)
    # The original: ≈ 44 MΩ (CVode); a fixed step changes the steady state negligibly.
    assert 30.0 <= rest["input_resistance_MOhm"] <= 60.0


@pytest.mark.neuron
@pytest.mark.slow
@pytest.mark.parametrize("amp_nA", sorted(ORIGINAL_STEP_SPIKES))
def test_step_spike_counts_near_original(cell1_validation, amp_nA, record_property):
    step = cell1_validation["steps"]["steps"][f"{amp_nA:g}"]
    record_property("n_spikes", step["n_spikes"])
    expected = ORIGINAL_STEP_SPIKES[amp_nA]
    assert abs(step["n_spikes"] - expected) <= 2, f"{step['n_spikes']} spikes at {amp_nA} nA, original {expected}"
    assert step["features"]["spike_count"] == step["n_spikes"]


@pytest.mark.neuron
@pytest.mark.slow
def test_bap_attenuates_along_the_trunk(cell1_validation):
    bap = cell1_validation["bap"]
    amplitudes = [entry["amplitude_mV"] for entry in bap["trunk"]]
    assert bap["attenuates"] and amplitudes[0] > 1.5 * amplitudes[-1]
    assert [abs(e["distance_um"] - e["target_um"]) < 20.0 for e in bap["trunk"]] == [True] * len(amplitudes)


@pytest.mark.neuron
@pytest.mark.slow
def test_bac_firing(cell1_validation):
    bac = cell1_validation["bac"]
    runs = bac["runs"]
    assert bac["epsc_distance_um"] >= 600.0
    assert runs["both"]["ca_spike"] and runs["both"]["n_somatic_spikes"] > runs["soma_only"]["n_somatic_spikes"]
    assert not runs["soma_only"]["ca_spike"] and not runs["epsc_only"]["ca_spike"]
    assert runs["epsc_only"]["n_somatic_spikes"] == 0
    assert bac["bac_firing"]


@pytest.fixture(scope="module")
def reference_step_features(shared_data):
    """eFEL features of the original model's 1 s steps (reference_traces, 8 kHz), by amplitude."""
    ref = np.load(shared_data / "reference_traces" / "original_l5pc_step_currents.npz")
    cfg = ValidationConfig.quick()
    return {amp: spike_features(ref[f"amp_{amp}_soma_mV"].astype(np.float64), ref["t_ms"][1] - ref["t_ms"][0],
                                cfg.step_delay_ms, cfg.step_delay_ms + cfg.step_dur_ms)
            for amp in sorted(ORIGINAL_STEP_SPIKES)}


def test_reference_step_features(reference_step_features):
    # eFEL on the original's traces finds the spikes its README lists (local maxima above −25 mV).
    assert {amp: f["spike_count"] for amp, f in reference_step_features.items()} == ORIGINAL_STEP_SPIKES
    assert 20.0 < reference_step_features[0.5]["AP_height"] < 40.0


@pytest.mark.neuron
@pytest.mark.slow
@pytest.mark.parametrize("amp_nA", sorted(ORIGINAL_STEP_SPIKES))
def test_step_features_match_original(cell1_validation, reference_step_features, amp_nA):
    ours = cell1_validation["steps"]["steps"][f"{amp_nA:g}"]["features"]
    theirs = reference_step_features[amp_nA]
    for name in ("AP_height", "AP_width", "AHP_depth_abs", "time_to_first_spike", "mean_frequency"):
        assert ours[name] == pytest.approx(theirs[name], rel=0.05, abs=0.3), name
