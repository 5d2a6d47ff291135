"""Spike matching: how many spikes of one train have a partner in another within a window.

The physiology checks (a simulated trace against a reference) and the spike-timing metrics of a surrogate
(coincidence factor) both count matches this one way.
"""

from __future__ import annotations

import numpy as np

COINCIDENCE_WINDOW_MS = 2.0  # ±2 ms, the window of Beniaguev et al. 2021 and of Jolivet et al. 2008's Γ


def match_spikes(ref_ms: np.ndarray, test_ms: np.ndarray, window_ms: float = COINCIDENCE_WINDOW_MS) -> int:
    """Number of one-to-one pairs |t_ref − t_test| ≤ window_ms; each spike is matched at most once.

    Greedy in time order (each reference spike takes the earliest unmatched test spike in its window), which
    is a maximum matching for intervals on a line. Inputs: float [n], [m] spike times (ms, any order).
    """
    ref = np.sort(np.asarray(ref_ms, dtype=np.float64))
    test = np.sort(np.asarray(test_ms, dtype=np.float64))
    matched, j = 0, 0
    for t in ref:
        while j < test.size and test[j] < t - window_ms:
            j += 1
        if j < test.size and test[j] <= t + window_ms:
            matched += 1
            j += 1
    return matched
