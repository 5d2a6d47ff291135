"""The simulator wrapper: the only module (besides ``mechanisms/build.py``) that touches NEURON's ``h``.

:class:`CellSimulator` builds one cell from data — a :class:`~biophys.morphology.Morphology`, the biophysics
plan of :mod:`biophys.l5pc` and the synapse table of :mod:`biophys.synapses` — runs it on input spike trains,
records it, and tears it down completely. NEURON is imported lazily, so importing this module is cheap.

NEURON state is global per process, so at most one CellSimulator may be open at a time; ``close()`` (or
leaving the ``with`` block) deletes every section, point process, NetCon, stimulus and recording it made, after
which a new CellSimulator can be built in the same process. NEURON failures are raised as
:class:`SimulationError`. Stimuli and probes are added to and removed from ``CellSimulator.attached``
(:class:`biophys.stimuli.Attachments`).

Input events: a spike in bin k (or at time t) is delivered to its synapse's NetCon at t = k ms, queued with
``NetCon.event`` after ``finitialize``, so a spike at t = 0 releases like any other. ``SimConfig.engine`` picks
who integrates (:mod:`biophys.engine`); the model and its recordings are the same for both.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

from biophys import engine, l5pc, morphology, morphology_io, synapses
from biophys.config import CellConfig, SimConfig
from biophys.inputs import spike_matrix_to_times
from biophys.recordings import Probe, SimResult, detect_spikes, recording
from biophys.stimuli import Attached, Attachments, CurrentStep, EpscCurrent
from conventions.signals import DT_MS, HIRES_DT_MS

_open_simulator: "CellSimulator | None" = None
#: A segment site: section name and x, e.g. "apic[36](0.5)".
_SEGMENT_SITE = re.compile(r"^([A-Za-z_]\w*\[\d+\])\(([0-9.eE+-]+)\)$")


class SimulationError(RuntimeError):
    """Building, running or tearing down the NEURON model failed (the message says which and why)."""


def _h():
    """NEURON's ``h`` (imported without its GUI) with the standard run system and Import3d loaded."""
    from biophys.mechanisms.build import neuron_h

    h = neuron_h()
    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    return h


class CellSimulator:
    """One cell in NEURON: build, run on input spikes, tear down. Use as a context manager.

    Attributes:
        cell, sim: the configs.
        attached: the stimuli and probes attached now (:class:`biophys.stimuli.Attachments`).
        morphology: the Morphology built (axon replaced by stubs).
        synapses: pandas.DataFrame, one row per synapse in dataset order — all excitatory (basal segments then
            apical, section then segment order), then the inhibitory ones in the same segment order. Columns:
            segment (str "dend[3](0.25)"), section (str), x (0..1), tree ("basal" | "apical"), distance_um (path
            distance from soma(0.5) to the segment centre), length_um (segment length), kind ("exc" | "inh"),
            sign (+1 | −1), pos_x_um, pos_y_um, pos_z_um (segment centre, µm).
        n_synapses: len(synapses).
        segments: DataFrame of every segment (see :func:`biophys.morphology.segment_table`).

    Raises:
        SimulationError: another CellSimulator is open, NEURON already holds foreign sections, or NEURON
            failed while building. MorphologyError / BiophysicsError for bad input files.
    """

    def __init__(self, cell: CellConfig | None = None, sim: SimConfig | None = None):
        global _open_simulator
        self.cell = cell if cell is not None else CellConfig()
        self.sim = sim if sim is not None else SimConfig()
        if _open_simulator is not None:
            raise SimulationError("a CellSimulator is already open in this process (NEURON state is global); "
                                  "close() it first")
        from biophys.mechanisms.build import load_mechanisms, mechanism_hash

        h = _h()
        self._mechanism_hash = mechanism_hash()
        load_mechanisms()
        leftover = len(list(h.allsec()))
        if leftover:
            raise SimulationError(f"NEURON already holds {leftover} sections not made by CellSimulator; "
                                  "a CellSimulator needs an empty model")
        self._sections: dict[str, object] = {}
        self._point_processes: list = []
        self._netcons: list = []
        self._recordings: dict[str, object] = {}
        self._dend_vectors: list = []
        self.attached = Attachments(h, self.segment)
        self._soma: Probe | None = None
        _open_simulator = self
        try:
            self._build(h)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "CellSimulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Delete every NEURON object this simulator made; afterwards NEURON holds no sections. Idempotent."""
        global _open_simulator
        if _open_simulator is not self:
            return
        h = _h()
        self.attached.clear()
        if self._soma is not None:
            self._soma.detach()
        self._netcons.clear()
        self._point_processes.clear()
        self._recordings.clear()
        self._dend_vectors.clear()
        for sec in reversed(list(self._sections.values())):
            h.delete_section(sec=sec)
        self._sections.clear()
        _open_simulator = None
        remaining = len(list(h.allsec()))
        if remaining:
            raise SimulationError(f"{remaining} NEURON sections survived close()")

    # --- building ----------------------------------------------------------------------------------------------

    def _build(self, h) -> None:
        morph = morphology_io.load_morphology(self.cell.name, self.cell.morphology, h)
        self.morphology = morphology.replace_axon(morph)
        self.morphology.validate()
        self.biophysics = l5pc.load_biophysics()
        try:
            self._make_sections(h)
            self._apply(l5pc.plan(self.biophysics, self.morphology))
        except (RuntimeError, ValueError, AttributeError) as exc:
            raise SimulationError(f"building {self.cell.name} in NEURON failed: {exc}") from exc
        self.segments = morphology.segment_table(self.morphology)
        self.synapses = synapses.synapse_table(self.segments)
        self.n_synapses = len(self.synapses)
        self._dendritic = synapses.dendritic_segments(self.segments)
        try:
            self._make_synapses(h)
            self._make_recordings(h)
        except (RuntimeError, ValueError, AttributeError) as exc:
            raise SimulationError(f"creating synapses or recordings failed: {exc}") from exc

    def _make_sections(self, h) -> None:
        for geom in self.morphology.sections:
            sec = h.Section(name=geom.name)
            for x, y, z, d in geom.points:
                sec.pt3dadd(float(x), float(y), float(z), float(d))
            if geom.parent is not None:
                sec.connect(self._sections[geom.parent](geom.parent_x), 0)
            self._sections[geom.name] = sec
        for geom in self.morphology.sections:
            sec = self._sections[geom.name]
            sec.nseg = morphology.nseg_for_length(sec.L)
            if sec.nseg != geom.nseg:
                raise SimulationError(f"{geom.name}: NEURON's L = {sec.L} µm gives nseg {sec.nseg}, the geometry "
                                      f"{geom.length_um} µm gives {geom.nseg}")

    def _apply(self, plan: l5pc.BiophysicsPlan) -> None:
        for name, mechanisms in plan.inserts.items():
            sec = self._sections[name]
            for mechanism in mechanisms:
                try:
                    sec.insert(mechanism)
                except ValueError as exc:
                    raise SimulationError(f"mechanism {mechanism!r} is not compiled/loaded ({exc})") from exc
        for section, x, name, value in plan.values.itertuples(index=False):
            sec = self._sections[section]
            if name == "Ra":
                sec.Ra = value
            elif np.isnan(x):
                for seg in sec:
                    setattr(seg, name, value)
            else:
                setattr(sec(x), name, value)

    def _make_synapses(self, h) -> None:
        kinds = synapses.synapse_kinds(self.biophysics, self.cell.synapse_model)
        for row in self.synapses.itertuples(index=False):
            kind = kinds[row.kind]
            pp = getattr(h, kind.point_process)(self._sections[row.section](row.x))
            for name, value in kind.params.items():
                setattr(pp, name, value)
            nc = h.NetCon(None, pp)
            nc.weight[0] = kind.weight
            nc.delay = 0.0
            self._point_processes.append(pp)
            self._netcons.append(nc)

    def _make_recordings(self, h) -> None:
        self._soma = Probe("soma", h, self.segment("soma")._ref_v)
        self._recordings["t"] = recording(h, h._ref_t, None)
        # made now so that a cell holds its recordings from the start; each run remakes them for its engine
        self._record_per_ms(h, every_step=False)

    def _record_per_ms(self, h, every_step: bool) -> None:
        """(Re)make the 1 ms recordings (nexus, dendrites if asked) for the next run: at 1 ms intervals, or at
        every step for an engine that records only those (:func:`biophys.engine.records_every_step`)."""
        interval = None if every_step else DT_MS
        self._recordings.pop("nexus", None)
        if self.morphology.nexus is not None:
            self._recordings["nexus"] = recording(h, self.segment("nexus")._ref_v, interval)
        self._dend_vectors = [recording(h, self._sections[row.section](row.x)._ref_v, interval)
                              for row in self._dendritic.itertuples(index=False)] if self.sim.record_dendrites else []

    def section(self, name: str):
        """The NEURON section called ``name`` (e.g. "apic[36]")."""
        return self._sections[name]

    def segment(self, site: str):
        """The NEURON segment of a site: "soma" (soma(0.5)), "nexus" or a segment such as "apic[36](0.5)"."""
        if site == "soma":
            return self._sections[self.morphology.region("soma")[0].name](0.5)
        if site == "nexus" and self.morphology.nexus is not None:
            return self._sections[self.morphology.nexus[0]](self.morphology.nexus[1])
        match = _SEGMENT_SITE.match(site)
        if match is None or match.group(1) not in self._sections or not 0.0 <= float(match.group(2)) <= 1.0:
            raise ValueError(f"unknown site {site!r} for this morphology (expected 'soma', 'nexus' or a "
                             "segment such as 'apic[36](0.5)')")
        return self._sections[match.group(1)](float(match.group(2)))

    def probe_traces(self, duration_ms: int) -> dict[str, np.ndarray]:
        """site → float32 [8·duration_ms] voltage (mV) at t = 0, 0.125, ... ms of the last run, for every probe
        attached with ``attached.add_probes``."""
        return {site: self._hires(probe, int(duration_ms)) for site, probe in self.attached.probes.items()}

    # --- running -----------------------------------------------------------------------------------------------

    def run(self, input_spikes: np.ndarray, duration_ms: int,
            stimuli: Sequence[CurrentStep | EpscCurrent] = ()) -> SimResult:
        """Simulate ``duration_ms`` ms of input.

        Args:
            input_spikes: uint8/bool [n_synapses, T ≤ duration_ms] spike counts per 1 ms bin in synapse-table
                order; a spike in bin k is delivered at t = k ms.
            duration_ms: T, the number of 1 ms samples returned.
            stimuli: current steps or EPSC currents attached for this run only (e.g. validation protocols).
        """
        counts = np.asarray(input_spikes)
        if counts.ndim != 2 or counts.shape[0] != self.n_synapses or counts.shape[1] > duration_ms:
            raise ValueError(f"input_spikes must be [n_synapses = {self.n_synapses}, T <= {duration_ms}], "
                             f"got shape {counts.shape}")
        return self.run_spike_times(spike_matrix_to_times(counts), duration_ms, stimuli)

    def run_spike_times(self, spike_times: Sequence[np.ndarray], duration_ms: int,
                        stimuli: Sequence[CurrentStep | EpscCurrent] = ()) -> SimResult:
        """Simulate ``duration_ms`` ms with one array of spike times (ms, in [0, duration_ms)) per synapse."""
        if len(spike_times) != self.n_synapses:
            raise ValueError(f"need {self.n_synapses} spike-time arrays, got {len(spike_times)}")
        duration_ms = int(duration_ms)
        if duration_ms < 1:
            raise ValueError("duration_ms must be >= 1")
        times = [np.asarray(t, dtype=np.float64).ravel() for t in spike_times]
        for i, t in enumerate(times):
            if t.size and (t.min() < 0 or t.max() >= duration_ms or not np.all(np.isfinite(t))):
                raise ValueError(f"synapse {i}: spike times must lie in [0, {duration_ms}) ms")
        h = _h()
        integrator = engine.choose(self.sim)
        every_step = engine.records_every_step(integrator)
        attached: list[Attached] = []
        try:
            attached.extend(self.attached.add_stimulus(stimulus) for stimulus in stimuli)
            engine.prepare(h, self.sim, integrator, self._netcons)
            self._record_per_ms(h, every_step)
            h.finitialize(self.sim.v_init_mV)
            engine.queue_events(self._netcons, times)
            engine.advance(h, self.sim, integrator, float(duration_ms))
        except RuntimeError as exc:
            raise SimulationError(f"{integrator} failed during the run: {exc}") from exc
        finally:
            for stimulus in attached:
                self.attached.remove_stimulus(stimulus)
        return self._collect(duration_ms, round(DT_MS / self.sim.dt_ms) if every_step else 1)

    def _hires(self, probe: Probe, duration_ms: int) -> np.ndarray:
        """float32 [8·duration_ms]: a probe's voltage at t = 0, 0.125, ..., duration_ms − 0.125 ms of the last
        run (linear interpolation between fixed steps; CVode's own interpolation under CVode)."""
        n = duration_ms * int(round(DT_MS / HIRES_DT_MS))
        if self.sim.method == "cvode":
            values = probe.grid.as_numpy()
            if values.size < n:
                raise SimulationError(f"recorded {values.size} samples at {probe.site}, expected {n}")
            return values[:n].astype(np.float32)
        t = self._recordings["t"].as_numpy()
        values = probe.steps.as_numpy()
        if t.size < 2 or t[-1] < (n - 1) * HIRES_DT_MS - 1e-6:
            raise SimulationError(f"the run of {probe.site} stopped at t = {t[-1] if t.size else 0:g} ms, "
                                  f"expected {duration_ms} ms")
        return np.interp(np.arange(n) * HIRES_DT_MS, t, values).astype(np.float32)

    def _collect(self, duration_ms: int, every: int) -> SimResult:
        """The last run's result; the 1 ms recordings hold a sample every ``every`` recorded ones."""
        per_ms = int(round(DT_MS / HIRES_DT_MS))
        soma_hi = self._hires(self._soma, duration_ms)
        nexus = None
        if "nexus" in self._recordings:
            nexus = _first(self._recordings["nexus"], duration_ms, "nexus", every).astype(np.float32)
        dend = None
        if self._dend_vectors:
            dend = np.stack([_first(v, duration_ms, "dendritic", every) for v in self._dend_vectors],
                            axis=1).astype(np.float16)
        return SimResult(
            soma_mV=soma_hi[::per_ms].copy(),
            nexus_mV=nexus,
            spike_times_ms=detect_spikes(soma_hi, HIRES_DT_MS, self.sim.spike_threshold_mV),
            dend_mV=dend,
            soma_hires_mV=soma_hi,
        )

    def provenance(self) -> dict:
        """JSON-serialisable: cell and sim configs, the engine that integrates (``sim.engine`` or its NEURON
        fallback), morphology origin (path + sha256, or generator version), biophysics JSON path + sha256,
        mechanism hash, NEURON version, segment and synapse counts."""
        from biophys.mechanisms.build import neuron_version

        counts = self.segments.groupby("region").size()
        return {
            "cell": dataclasses.asdict(self.cell),
            "sim": dataclasses.asdict(self.sim),
            "engine": engine.choose(self.sim),
            "morphology": dict(self.morphology.provenance),
            "nexus": list(self.morphology.nexus) if self.morphology.nexus else None,
            "biophysics": {"path": self.biophysics.path, "sha256": self.biophysics.sha256},
            "mechanism_hash": self._mechanism_hash,
            "neuron_version": neuron_version(),
            "n_sections": len(self.morphology.sections),
            "n_segments": int(len(self.segments)),
            "n_segments_per_region": {k: int(v) for k, v in counts.items()},
            "n_dendritic_segments": int(len(self._dendritic)),
            "n_synapses": int(self.n_synapses),
        }


def _first(vector, n: int, what: str, every: int = 1) -> np.ndarray:
    """The first ``n`` of every ``every``-th sample of a recording Vector, copied to NumPy (float64)."""
    values = vector.as_numpy()[::every]
    if values.size < n:
        raise SimulationError(f"recorded {values.size} {what} samples, expected {n}")
    return values[:n].copy()
