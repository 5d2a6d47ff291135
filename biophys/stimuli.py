"""Current steps and EPSC-shaped currents, and the register of what is attached to a cell: each stimulus and
probe is added and removed explicitly.

A stimulus is a small record of its parameters; ``attach(h, segment)`` makes its NEURON objects with the ``h``
and the segment that :class:`biophys.simulator.CellSimulator` hands over (the simulator owns NEURON; this module
never imports it) and returns an :class:`Attached` whose :meth:`~Attached.detach` drops them, after which NEURON
frees them. :class:`Attachments` keeps a cell's stimuli and probes (:class:`biophys.recordings.Probe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from biophys.recordings import Probe

_EPSC_SAMPLE_MS = 0.025  # the EPSC waveform's sampling step (NEURON interpolates between samples)


class Attached:
    """The NEURON objects that keep one stimulus in the model; :meth:`detach` releases them."""

    def __init__(self, stimulus, objects: list):
        self.stimulus = stimulus
        self._objects = objects

    @property
    def attached(self) -> bool:
        return bool(self._objects)

    def detach(self) -> None:
        """Drop every NEURON object of the stimulus (idempotent)."""
        self._objects.clear()


@dataclass
class CurrentStep:
    """A current clamp: ``amp_nA`` from ``delay_ms`` for ``dur_ms`` at ``site`` ("soma" = soma(0.5), "nexus" or
    a segment such as "apic[36](0.5)")."""

    amp_nA: float
    delay_ms: float
    dur_ms: float
    site: str = "soma"

    def attach(self, h, segment) -> Attached:
        """An IClamp at ``segment`` (a NEURON segment) with this step's amplitude and timing."""
        clamp = h.IClamp(segment)
        clamp.amp, clamp.delay, clamp.dur = self.amp_nA, self.delay_ms, self.dur_ms
        return Attached(self, [clamp])


@dataclass
class EpscCurrent:
    """An EPSC-shaped injected current: a double exponential (rise ``tau_rise_ms``, decay ``tau_decay_ms``)
    starting at ``delay_ms`` and peaking at ``peak_nA``, at ``site`` ("soma", "nexus" or a segment such as
    "apic[36](0.5)")."""

    peak_nA: float
    delay_ms: float
    tau_rise_ms: float = 0.5
    tau_decay_ms: float = 5.0
    site: str = "soma"

    def __post_init__(self):
        if not 0 < self.tau_rise_ms < self.tau_decay_ms:
            raise ValueError(f"EpscCurrent needs 0 < tau_rise_ms < tau_decay_ms, got {self.tau_rise_ms}, "
                             f"{self.tau_decay_ms}")

    def waveform(self, step_ms: float) -> tuple[np.ndarray, np.ndarray]:
        """(t_ms, i_nA) float64 [n]: the current from t = 0 until it has decayed for 10 decay constants."""
        t = np.arange(0.0, self.delay_ms + 10.0 * self.tau_decay_ms, step_ms)
        s = np.clip(t - self.delay_ms, 0.0, None)
        shape = np.exp(-s / self.tau_decay_ms) - np.exp(-s / self.tau_rise_ms)
        t_peak = (self.tau_rise_ms * self.tau_decay_ms / (self.tau_decay_ms - self.tau_rise_ms)
                  * np.log(self.tau_decay_ms / self.tau_rise_ms))
        norm = np.exp(-t_peak / self.tau_decay_ms) - np.exp(-t_peak / self.tau_rise_ms)
        return t, self.peak_nA * shape / norm

    def attach(self, h, segment) -> Attached:
        """An IClamp whose amplitude follows the waveform (interpolated linearly, so it also drives CVode); the
        clamp and the two Vectors it plays from stay alive until detached."""
        clamp = h.IClamp(segment)
        clamp.delay, clamp.dur = 0.0, 1e9
        t, i = self.waveform(_EPSC_SAMPLE_MS)
        t_vec, i_vec = h.Vector(t), h.Vector(i)
        i_vec.play(clamp._ref_amp, t_vec, 1)
        return Attached(self, [clamp, t_vec, i_vec])


class Attachments:
    """The stimuli and voltage probes attached to one cell, each removable.

    Args:
        h: NEURON's ``h``, from the simulator.
        segment: site → NEURON segment ("soma", "nexus" or a segment such as "apic[36](0.5)"); raises
            ValueError for an unknown site.
    """

    def __init__(self, h, segment: Callable[[str], object]):
        self._h, self._segment = h, segment
        self.stimuli: list[Attached] = []
        self.probes: dict[str, Probe] = {}

    def add_stimulus(self, stimulus: CurrentStep | EpscCurrent) -> Attached:
        """Attach a stimulus at its site for every later run, until :meth:`remove_stimulus`."""
        attached = stimulus.attach(self._h, self._segment(stimulus.site))
        self.stimuli.append(attached)
        return attached

    def remove_stimulus(self, attached: Attached) -> None:
        attached.detach()
        self.stimuli.remove(attached)

    def add_probes(self, sites: Sequence[str]) -> None:
        """Record the voltage at each site every 0.125 ms in every later run, until :meth:`remove_probes`."""
        for site in sites:
            if site not in self.probes:
                self.probes[site] = Probe(site, self._h, self._segment(site)._ref_v)

    def remove_probes(self, sites: Sequence[str] | None = None) -> None:
        """Stop recording at ``sites`` (None: at every probe)."""
        for site in list(self.probes) if sites is None else sites:
            self.probes.pop(site).detach()

    def clear(self) -> None:
        """Remove every stimulus and probe."""
        for attached in list(self.stimuli):
            self.remove_stimulus(attached)
        self.remove_probes()
