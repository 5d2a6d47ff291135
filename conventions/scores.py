"""The two scores both training's validation and the analysis report: spike ROC AUC and somatic RMSE.

Pure functions on NumPy arrays of 1 ms bins; spike scores are probabilities or logits (any monotone score),
voltages are in mV, the truth is clipped at −55 mV (:mod:`conventions.signals`) and the prediction is used as
it is, neither clipped nor rescaled.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from conventions.signals import clip_soma


def flat_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays flattened, after checking that their shapes agree and that they hold samples."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("no samples to evaluate")
    return a.reshape(-1), b.reshape(-1)


def spike_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of spike prediction over all bins.

    Args:
        labels: bool [...] true output spike per bin.
        scores: float [...] (same shape) predicted spike probability, logit or any monotone score per bin.
    Returns:
        AUC in [0, 1]; NaN when the labels hold a single class (AUC undefined).
    """
    labels, scores = flat_pair(labels, scores)
    if labels.all() or not labels.any():
        return math.nan
    return float(roc_auc_score(labels, scores))


def soma_rmse(true_mv: np.ndarray, pred_mv: np.ndarray) -> float:
    """RMSE (mV) of a predicted somatic voltage [...] against the simulated one [...] clipped at −55 mV."""
    truth, pred = flat_pair(clip_soma(true_mv), pred_mv)
    return float(np.sqrt(np.mean((pred.astype(np.float64) - truth) ** 2)))
