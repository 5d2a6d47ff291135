"""Time bins, spike labels and the somatic voltage target: the conventions of the NeuronIO data.

They follow the published NeuronIO releases (Beniaguev, Segev & London 2021) and the ELM training setup
(Spieler et al. 2023):

- a dataset time bin is 1 ms; a spike at time t (ms) falls in bin ``int(t − 0.5)`` (clamped to the record);
- spikes are detected on an 8 kHz (0.125 ms) somatic grid;
- the somatic voltage target is the voltage clipped at −55 mV from above (spikes removed), then shifted by
  67.7 mV and scaled by 0.1 per mV so that it sits near 0…1.3;
- the first 150 ms of a window or simulation are a burn-in, excluded from losses and metrics because a model's
  state has not yet caught up with its input.
"""

from __future__ import annotations

import numpy as np

DT_MS = 1.0  # the dataset's time bin (ms)
HIRES_DT_MS = 0.125  # the grid on which output spikes are detected (ms): 8 kHz
SOMA_CLIP_MV = -55.0  # voltages above are spikes; the soma target and voltage metrics ignore them
SOMA_OFFSET_MV = 67.7  # added before scaling so the target sits near 0..1.3
SOMA_SCALE_PER_MV = 0.1
BURN_IN_MS = 150  # leading ms of a window or simulation left out of losses and metrics


def spike_bins(spike_times_ms: np.ndarray, n_time: int) -> np.ndarray:
    """Per-bin output spike labels.

    Args:
        spike_times_ms: float [n] output spike times in ms.
        n_time: number of 1 ms bins.
    Returns:
        bool [n_time]; bin ``int(t − 0.5)`` of each spike is True (the convention of the NeuronIO releases,
        i.e. the bin whose centre-to-centre window holds the spike peak); spikes past the record are dropped.
    """
    labels = np.zeros(n_time, dtype=bool)
    idx = np.asarray(spike_times_ms, dtype=np.float64) - 0.5
    idx = idx[np.isfinite(idx)].astype(np.int64)
    labels[idx[(idx >= 0) & (idx < n_time)]] = True
    return labels


def spikes_in_bins(spike_times_ms: np.ndarray, first_bin: int, end_bin: int) -> np.ndarray:
    """The spike times (ms) whose bin ``int(t − 0.5)`` lies in [first_bin, end_bin): t in [first + 0.5, end + 0.5)."""
    t = np.asarray(spike_times_ms, dtype=np.float64)
    return t[(t >= first_bin + 0.5) & (t < end_bin + 0.5)]


def bin_centre_ms(k):
    """The time (ms) standing for bin k: k + 1, the centre of the spike times [k + 0.5, k + 1.5) it holds."""
    return k + 1.0


def clip_soma(v_mv):
    """Somatic voltage with spikes removed: min(V, −55 mV), same shape and type (NumPy float64 or torch)."""
    if isinstance(v_mv, np.ndarray) or np.isscalar(v_mv):
        return np.minimum(np.asarray(v_mv, dtype=np.float64), SOMA_CLIP_MV)
    return v_mv.clamp(max=SOMA_CLIP_MV)


def soma_target(v_mv):
    """Scaled soma target (min(V, −55) + 67.7) · 0.1 of a voltage in mV (NumPy keeps its dtype, or torch)."""
    clipped = np.minimum(v_mv, SOMA_CLIP_MV) if isinstance(v_mv, np.ndarray) else v_mv.clamp(max=SOMA_CLIP_MV)
    return (clipped + SOMA_OFFSET_MV) * SOMA_SCALE_PER_MV


def soma_from_target(y):
    """Inverse of :func:`soma_target` on the voltage channel: model output → mV (not clipped)."""
    return y / SOMA_SCALE_PER_MV - SOMA_OFFSET_MV
