"""What is recorded from a cell: voltage recordings and probes, a run's result, and spike detection.

:func:`recording` and :class:`Probe` make NEURON Vectors with the ``h`` the simulator hands over (this module
never imports NEURON); :class:`SimResult` and :func:`detect_spikes` are plain NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conventions.signals import HIRES_DT_MS


@dataclass
class SimResult:
    """One simulation's output.

    Attributes:
        soma_mV: float32 [T], soma(0.5) voltage (mV) at t = 0, 1, ..., T−1 ms.
        nexus_mV: float32 [T] at the nexus (l5pc on cell1: apic[50](0.9); synthetic and ball-and-stick: the
            trunk's end at x = 0.9), or None when the morphology defines no nexus.
        spike_times_ms: float64 [n], local maxima of the 8 kHz somatic trace above the threshold.
        dend_mV: float16 [T, n_segments] dendritic segment voltages (synapse-table segment order) or None.
        soma_hires_mV: float32 [8·T], soma(0.5) voltage at t = 0, 0.125, ..., T − 0.125 ms.
    """

    soma_mV: np.ndarray
    nexus_mV: np.ndarray | None
    spike_times_ms: np.ndarray
    dend_mV: np.ndarray | None
    soma_hires_mV: np.ndarray | None = None


def detect_spikes(v_mV: np.ndarray, dt_ms: float, threshold_mV: float) -> np.ndarray:
    """Times (ms, float64 [n]) of the local maxima of ``v_mV`` (sampled every ``dt_ms`` from t = 0) that lie
    above ``threshold_mV``. A flat top counts once, at its first sample."""
    v = np.asarray(v_mV, dtype=np.float64)
    if v.size < 3:
        return np.zeros(0)
    inner = v[1:-1]
    peaks = (inner > threshold_mV) & (inner > v[:-2]) & (inner >= v[2:])
    return (np.flatnonzero(peaks) + 1) * dt_ms


def recording(h, reference, interval_ms: float | None):
    """A Vector that records ``reference`` every ``interval_ms`` from t = 0, or at every time step when None
    (refilled by every finitialize)."""
    vector = h.Vector()
    if interval_ms is None:
        vector.record(reference)
    else:
        vector.record(reference, interval_ms)
    return vector


class Probe:
    """The voltage of one segment in every run until :meth:`detach`: on the 0.125 ms grid (exact under CVode,
    which interpolates to it) and at every time step (fixed steps interpolate the grid from these, since
    NEURON's gridded recording picks a nearby step's value when the step does not divide the grid)."""

    def __init__(self, site: str, h, reference):
        self.site = site
        self.grid = recording(h, reference, HIRES_DT_MS)
        self.steps = recording(h, reference, None)

    @property
    def attached(self) -> bool:
        return self.grid is not None

    def detach(self) -> None:
        """Stop recording and drop the Vectors (idempotent)."""
        self.grid = self.steps = None
