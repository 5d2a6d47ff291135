"""Evaluation metrics of a surrogate on NeuronIO data: pure functions on NumPy arrays.

Time bins are 1 ms and a spike at t falls in bin int(t − 0.5) (:mod:`conventions.signals`); spike labels are
bool per bin; spike predictions are probabilities in [0, 1] per bin; voltages are in mV. The somatic voltage
target is the truth clipped at −55 mV from above (spikes removed); predictions are compared unrescaled (never
rescaled to the truth's mean and std). Spike ROC AUC and the soma RMSE are :mod:`conventions.scores`, which
training's validation computes too.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import explained_variance_score, roc_curve

from conventions.scores import flat_pair, soma_rmse
from conventions.signals import bin_centre_ms, clip_soma
from conventions.spikes import COINCIDENCE_WINDOW_MS, match_spikes


# --------------------------------------------------------------------------------------------- spikes


def roc(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (fpr, tpr), each float [n_points], fpr non-decreasing from 0 to 1 (scikit-learn)."""
    labels, probs = flat_pair(labels, probs)
    fpr, tpr, _ = roc_curve(labels, probs)
    return fpr, tpr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target_fpr: float) -> float:
    """True-positive rate of a ROC curve at a given false-positive rate.

    The ROC curve's vertices are the achievable (fpr, tpr) pairs of single thresholds; between two vertices the
    value is interpolated linearly, which is the operating point of randomly mixing the two neighbouring
    thresholds (the ROC convex combination), so the number is achievable and independent of a threshold grid.
    On a vertical segment (several vertices at one fpr) the highest tpr is taken: at that fpr the better
    threshold is available.

    Args:
        fpr, tpr: float [n] vertices of a ROC curve, fpr non-decreasing (e.g. from :func:`roc`).
        target_fpr: in [0, 1], e.g. 0.0025 for 0.25 %.
    """
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must lie in [0, 1], got {target_fpr}")
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    # tpr never decreases along the curve, so the last vertex at or left of the target is the top of any
    # vertical segment there
    i = int(np.searchsorted(fpr, target_fpr, side="right")) - 1
    if fpr[i] == target_fpr or i == len(fpr) - 1:
        return float(tpr[i])
    weight = (target_fpr - fpr[i]) / (fpr[i + 1] - fpr[i])
    return float(tpr[i] + weight * (tpr[i + 1] - tpr[i]))


def predicted_spike_bins(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Spike bins of a probability trace: one spike per run of bins above ``threshold``, at the run's maximum.

    A run of consecutive supra-threshold bins is one threshold crossing; its spike is placed at the local maximum
    of the probability inside the run (the first bin on ties), so a broad probability bump counts once.

    Args:
        probs: float [T] spike probability per 1 ms bin.
        threshold: probability threshold.
    Returns:
        int64 [n] bin indices in increasing order.
    """
    above = np.asarray(probs) > threshold
    if not above.any():
        return np.zeros(0, dtype=np.int64)
    edges = np.diff(np.r_[0, above.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return np.array([s + int(np.argmax(probs[s:e])) for s, e in zip(starts, stops)], dtype=np.int64)


def coincidence_factor(n_coinc: int, n_true: int, n_pred: int, duration_ms: float,
                       window_ms: float = COINCIDENCE_WINDOW_MS) -> float:
    """Coincidence factor Γ of a predicted spike train against the true one.

    Kistler, Gerstner & van Hemmen (1997), Neural Computation 9:1015; in the form of Jolivet et al. (2008),
    J. Neurosci. Methods 169:417, eq. (2):

        Γ = (N_coinc − ⟨N_coinc⟩) / (½ (N_true + N_pred)) · 1 / (1 − 2 ν Δ),   ⟨N_coinc⟩ = 2 ν Δ N_true,

    with ν = N_pred / duration the predicted train's rate and Δ the coincidence window (±Δ). Γ = 1 for identical
    trains, ≈ 0 for a Poisson train of the same rate, and negative when there are fewer coincidences than chance.

    Args:
        n_coinc: matched pairs (:func:`conventions.spikes.match_spikes`); n_true, n_pred: spike counts.
        duration_ms: length of the compared stretch; window_ms: Δ.
    Returns:
        Γ; NaN when both trains are empty or 2νΔ ≥ 1 (the predicted train is too dense for Γ to be defined).
    """
    if n_true + n_pred == 0:
        return math.nan
    chance_fraction = 2.0 * (n_pred / duration_ms) * window_ms
    if chance_fraction >= 1.0:
        return math.nan
    expected = chance_fraction * n_true
    return float((n_coinc - expected) / (0.5 * (n_true + n_pred)) / (1.0 - chance_fraction))


def spike_timing(true_ms: list[np.ndarray], probs: list[np.ndarray], threshold: float, offset_ms: list[float],
                 window_ms: float = COINCIDENCE_WINDOW_MS) -> dict:
    """Spike timing agreement of thresholded predictions, pooled over simulations.

    Predicted spikes are :func:`predicted_spike_bins` of each probability trace; bin k is placed at
    :func:`conventions.signals.bin_centre_ms` (offset + k + 1 ms), the centre of the spike times the label
    convention assigns to it. Counts are summed over simulations and Γ is computed from the sums
    with the total duration.

    Args:
        true_ms: per simulation, float [n_i] true spike times in ms (inside the evaluated stretch).
        probs: per simulation, float [T_i] spike probabilities of the evaluated stretch.
        threshold: probability threshold.
        offset_ms: per simulation, the time in ms of bin 0 of ``probs`` (e.g. the burn-in).
    Returns:
        dict: threshold, window_ms, n_true, n_pred, n_coincident, precision, recall, coincidence_factor
        (NaN where undefined).
    """
    n_true = n_pred = n_coinc = 0
    duration = 0.0
    for t_true, p, offset in zip(true_ms, probs, offset_ms):
        pred = offset + bin_centre_ms(predicted_spike_bins(p, threshold))
        n_true += len(t_true)
        n_pred += len(pred)
        n_coinc += match_spikes(t_true, pred, window_ms)
        duration += len(p)
    return {
        "threshold": float(threshold),
        "window_ms": float(window_ms),
        "n_true": n_true,
        "n_pred": n_pred,
        "n_coincident": n_coinc,
        "precision": n_coinc / n_pred if n_pred else math.nan,
        "recall": n_coinc / n_true if n_true else math.nan,
        "coincidence_factor": coincidence_factor(n_coinc, n_true, n_pred, max(duration, 1.0), window_ms),
    }


def choose_threshold(true_ms: list[np.ndarray], probs: list[np.ndarray], offset_ms: list[float],
                     candidates: np.ndarray | None = None, window_ms: float = COINCIDENCE_WINDOW_MS) -> float:
    """The probability threshold that maximises the coincidence factor Γ (arguments as :func:`spike_timing`).

    Candidates default to 0.01, 0.02, …, 0.99. Ties go to the lowest threshold; if Γ is undefined for every
    candidate (no spikes at all), 0.5 is returned.
    """
    candidates = np.round(np.arange(0.01, 1.0, 0.01), 2) if candidates is None else np.asarray(candidates)
    best, best_gamma = 0.5, -math.inf
    for threshold in candidates:
        gamma = spike_timing(true_ms, probs, float(threshold), offset_ms, window_ms)["coincidence_factor"]
        if not math.isnan(gamma) and gamma > best_gamma:
            best, best_gamma = float(threshold), gamma
    return best


#: fewest output spikes a split must hold for a spike threshold chosen on it to mean anything; below this the
#: timing metrics (Γ, precision, recall) are not reported rather than printed as zeros
MIN_THRESHOLD_SPIKES = 10
#: a best Γ below this on the threshold's split (0: chance; 1: every spike within ±2 ms and none spurious) means
#: no threshold makes the prediction's spikes meaningful, and timing metrics at it would read as zeros
MIN_THRESHOLD_GAMMA = 0.1


def supported_threshold(true_ms: list[np.ndarray], probs: list[np.ndarray], offset_ms: list[float],
                        min_spikes: int = MIN_THRESHOLD_SPIKES, min_gamma: float = MIN_THRESHOLD_GAMMA,
                        window_ms: float = COINCIDENCE_WINDOW_MS) -> tuple[float | None, str | None]:
    """:func:`choose_threshold`, or why the split cannot support a threshold (arguments as :func:`spike_timing`).

    A split with fewer than ``min_spikes`` output spikes in all, or on which no candidate threshold reaches a
    coincidence factor of ``min_gamma``, gives no usable threshold.

    Returns:
        (threshold, None), or (None, the reason as a phrase about the split).
    """
    n_spikes = int(sum(len(t) for t in true_ms))
    if n_spikes < min_spikes:
        return None, (f"holds {n_spikes} output spike(s) in {len(true_ms)} simulation(s), too few to choose a "
                      f"spike threshold on (needs ≥ {min_spikes})")
    threshold = choose_threshold(true_ms, probs, offset_ms, window_ms=window_ms)
    gamma = spike_timing(true_ms, probs, threshold, offset_ms, window_ms)["coincidence_factor"]
    if not gamma >= min_gamma:
        return None, (f"gives no threshold at which the predicted spikes match its {n_spikes} spikes (best Γ "
                      f"{gamma:.3f}, below {min_gamma:g})")
    return threshold, None


# -------------------------------------------------------------------------------------------- voltage


def soma_errors(true_mv: np.ndarray, pred_mv: np.ndarray) -> dict:
    """RMSE, MAE (mV) and explained variance of a somatic voltage prediction.

    The truth is clipped at −55 mV (the training target, :func:`conventions.signals.clip_soma`); the prediction
    is used as it is — neither clipped nor rescaled to the truth's statistics.

    Args:
        true_mv: float [...] simulated somatic voltage in mV (unclipped).
        pred_mv: float [...] (same shape) predicted somatic voltage in mV.
    Returns:
        dict: rmse_mV, mae_mV, explained_variance (1 − Var(truth − pred) / Var(truth); NaN for a constant truth).
    """
    truth, pred = flat_pair(clip_soma(true_mv), pred_mv)
    ev = math.nan if np.var(truth) == 0 else float(explained_variance_score(truth, pred))
    return {
        "rmse_mV": soma_rmse(true_mv, pred_mv),
        "mae_mV": float(np.mean(np.abs(pred.astype(np.float64) - truth))),
        "explained_variance": ev,
    }
