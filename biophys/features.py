"""Features of voltage traces for the physiology protocols (pure NumPy and eFEL; no NEURON).

Spike features are those of eFEL, the Blue Brain Project's electrophysiology feature extraction library (names
and definitions are eFEL's); the published ranges they are compared with are Hay et al. (2011)'s, see
:mod:`biophys.protocols`. Spike trains are matched as everywhere in the project
(:func:`conventions.spikes.match_spikes`).
"""

from __future__ import annotations

import math

import numpy as np

from conventions.signals import SOMA_CLIP_MV
from conventions.spikes import COINCIDENCE_WINDOW_MS, match_spikes

#: eFEL features of a step response; names and definitions are eFEL's (AP height = peak voltage, AP width at
#: the threshold level, AHP depth = absolute minimum between spikes).
STEP_FEATURES = ("spike_count", "mean_frequency", "AP_height", "AP_width", "spike_half_width", "AP_begin_voltage",
                 "time_to_first_spike", "doublet_ISI", "ISI_CV", "AHP_depth_abs", "adaptation_index2")


def spike_features(v_mV: np.ndarray, dt_ms: float, stim_start_ms: float, stim_end_ms: float,
                   threshold_mV: float = -20.0, names: tuple[str, ...] = STEP_FEATURES) -> dict[str, float | None]:
    """eFEL features of one voltage trace.

    Args:
        v_mV: float [n] voltage sampled every ``dt_ms`` from t = 0.
        stim_start_ms, stim_end_ms: the stimulus interval eFEL restricts its features to.
    Returns:
        feature name → float; per-spike features (AP height, widths, AHP depth, threshold) are averaged over
        spikes; None where eFEL gives no value (e.g. ISI features with fewer than 3 spikes).
    """
    import efel

    v = np.asarray(v_mV, dtype=np.float64)
    if v.ndim != 1 or v.size < 3:
        raise ValueError(f"v_mV must be a 1-D trace of >= 3 samples, got shape {v.shape}")
    trace = {"T": np.arange(v.size) * dt_ms, "V": v, "stim_start": [float(stim_start_ms)],
             "stim_end": [float(stim_end_ms)]}
    efel.set_setting("Threshold", float(threshold_mV))
    values = efel.get_feature_values([trace], list(names), raise_warnings=False)[0]
    out: dict[str, float | None] = {}
    for name in names:
        value = values.get(name)
        out[name] = float(np.mean(value)) if value is not None and len(value) else None
    if out.get("spike_count") is None and "spike_count" in names:
        out["spike_count"] = 0.0
    return out


def input_resistance_MOhm(v_mV: np.ndarray, dt_ms: float, rest_window_ms: tuple[float, float],
                          step_end_ms: float, average_ms: float, step_nA: float) -> float:
    """(steady-state voltage at the step's end − resting voltage) / step current, in MΩ (mV / nA).

    Args:
        v_mV: float [n] somatic voltage every ``dt_ms`` from t = 0.
        rest_window_ms: where the resting voltage is averaged; the steady state is the mean over the last
            ``average_ms`` before ``step_end_ms``.
    """
    v = np.asarray(v_mV, dtype=np.float64)
    rest = window_mean(v, dt_ms, *rest_window_ms)
    steady = window_mean(v, dt_ms, step_end_ms - average_ms, step_end_ms)
    return float((steady - rest) / step_nA)


def window_mean(v: np.ndarray, dt_ms: float, start_ms: float, end_ms: float) -> float:
    i0, i1 = int(round(start_ms / dt_ms)), int(round(end_ms / dt_ms))
    if not 0 <= i0 < i1 <= v.size:
        raise ValueError(f"window [{start_ms}, {end_ms}) ms lies outside the {v.size * dt_ms} ms trace")
    return float(v[i0:i1].mean())


def time_above_ms(v_mV: np.ndarray, dt_ms: float, threshold_mV: float) -> float:
    """Total time (ms) the trace spends above ``threshold_mV``."""
    return float(np.count_nonzero(np.asarray(v_mV) > threshold_mV) * dt_ms)


def compare_with_range(value: float | None, mean: float, sd: float) -> dict:
    """A feature against a published mean ± SD: {value, mean, sd, range: [mean − sd, mean + sd], z, pass}.
    A missing value fails."""
    ok = value is not None and math.isfinite(value)
    z = (value - mean) / sd if ok and sd > 0 else None
    return {"value": value, "mean": mean, "sd": sd, "range": [mean - sd, mean + sd], "z": z,
            "pass": bool(ok and abs(value - mean) <= sd)}


def compare_traces(ref_mV: np.ndarray, test_mV: np.ndarray, ref_spikes: np.ndarray, test_spikes: np.ndarray,
                   clip_mV: float = SOMA_CLIP_MV, window_ms: float = COINCIDENCE_WINDOW_MS) -> dict:
    """Agreement of a somatic trace and its spikes with a reference.

    Args:
        ref_mV, test_mV: float [T] somatic voltage on the same grid (e.g. 1 ms); both are clipped at ``clip_mV``
            so that spikes (which a ±1 sample shift makes huge) do not dominate the RMSE.
        ref_spikes, test_spikes: spike times (ms).
        window_ms: a test spike matches a reference spike within ± this.
    Returns:
        {rmse_mV, n_ref, n_test, matched, matched_fraction (of ref; 1 when ref is empty), spurious (unmatched
        test spikes), spurious_fraction (of n_ref, or of 1 when ref is empty)}.
    """
    ref = np.asarray(ref_mV, dtype=np.float64)
    test = np.asarray(test_mV, dtype=np.float64)
    if ref.shape != test.shape or ref.ndim != 1:
        raise ValueError(f"ref_mV and test_mV must be 1-D of equal length, got {ref.shape} and {test.shape}")
    rmse = float(np.sqrt(np.mean((np.minimum(ref, clip_mV) - np.minimum(test, clip_mV)) ** 2)))
    n_ref, n_test = len(ref_spikes), len(test_spikes)
    matched = match_spikes(ref_spikes, test_spikes, window_ms)
    return {"rmse_mV": rmse, "n_ref": n_ref, "n_test": n_test, "matched": matched,
            "matched_fraction": matched / n_ref if n_ref else 1.0, "spurious": n_test - matched,
            "spurious_fraction": (n_test - matched) / max(n_ref, 1)}
