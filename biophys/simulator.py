"""The simulator wrapper: the only module (besides ``mechanisms/build.py``) that touches NEURON's ``h``.

:class:`CellSimulator` builds one cell from data — a :class:`~biophys.morphology.Morphology`, the biophysics
plan of :mod:`biophys.l5pc` and the synapse table of :mod:`biophys.synapses` — runs it on input spike trains
and tears it down completely. NEURON is imported lazily inside functions, so importing this module is cheap.

NEURON state is global per process, so at most one CellSimulator may be open at a time; ``close()`` (or
leaving the ``with`` block) deletes every section, point process, NetCon and recording it made, after which a
new CellSimulator can be built in the same process. NEURON failures are raised as :class:`SimulationError`.

Input events: a spike in bin k (or at time t) is delivered to its synapse's NetCon at t = k ms, queued with
``NetCon.event`` after ``finitialize``, so a spike at t = 0 releases like any other.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from biophys import l5pc, morphology, synapses
from biophys.config import CellConfig, SimConfig
from conventions.signals import DT_MS, HIRES_DT_MS
from biophys.morphology import Morphology, MorphologyError, SectionGeometry

#: Import3d's section-list attribute → region.
_IMPORT3D_LISTS = {"soma": "soma", "dend": "basal", "apic": "apical", "axon": "axon"}

_open_simulator: "CellSimulator | None" = None
#: A segment site: section name and x, e.g. "apic[36](0.5)".
_SEGMENT_SITE = re.compile(r"^([A-Za-z_]\w*\[\d+\])\(([0-9.eE+-]+)\)$")
_EPSC_SAMPLE_MS = 0.025  # the EPSC waveform's sampling step (NEURON interpolates between samples)


class SimulationError(RuntimeError):
    """Building, running or tearing down the NEURON model failed (the message says which and why)."""


@dataclass
class CurrentStep:
    """A current clamp: ``amp_nA`` from ``delay_ms`` for ``dur_ms`` at ``site`` ("soma" = soma(0.5), or
    "nexus")."""

    amp_nA: float
    delay_ms: float
    dur_ms: float
    site: str = "soma"


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


def spike_matrix_to_times(input_spikes: np.ndarray) -> list[np.ndarray]:
    """uint8/bool [n_synapses, T] counts per 1 ms bin → per-synapse float64 spike times (ms); a count c in
    bin k gives c events at t = k ms."""
    counts = np.asarray(input_spikes)
    if counts.ndim != 2:
        raise ValueError(f"input_spikes must be [n_synapses, T], got shape {counts.shape}")
    if counts.size and counts.min() < 0:
        raise ValueError("input_spikes must be non-negative counts")
    rows, bins = np.nonzero(counts)
    reps = counts[rows, bins].astype(np.int64)
    rows, bins = np.repeat(rows, reps), np.repeat(bins, reps)
    splits = np.searchsorted(rows, np.arange(1, counts.shape[0]))
    return [b.astype(np.float64) for b in np.split(bins, splits)]


def _h():
    """NEURON's ``h`` with the standard run system and Import3d loaded."""
    from neuron import h

    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    return h


def read_morphology(path: str | Path) -> Morphology:
    """Read a Neurolucida ASC or SWC file through NEURON's Import3d into a :class:`Morphology`.

    The temporary NEURON sections Import3d makes are deleted before returning. Sections are named
    ``soma[i]``, ``dend[i]``, ``apic[i]``, ``axon[i]`` as Import3d numbers them; the nexus is cell1.asc's
    apic[50](0.9) when the file is cell1.asc (by sha256), else None.
    """
    path = Path(path)
    kind = morphology.check_morphology_file(path)
    h = _h()
    reader = h.Import3d_SWC_read() if kind == "swc" else h.Import3d_Neurolucida3()
    if kind == "asc":
        reader.quiet = 1
    target = _ImportTarget()
    try:
        reader.input(str(path))
        h.Import3d_GUI(reader, 0).instantiate(target)
        sections = _extract_geometry(target)
    except RuntimeError as exc:
        raise MorphologyError(f"NEURON's Import3d could not read {path}: {exc}") from exc
    finally:
        for sec in list(getattr(target, "all", [])):
            h.delete_section(sec=sec)
        target.__dict__.clear()
    sha = morphology.file_sha256(path)
    nexus = morphology.CELL1_NEXUS if sha == morphology.CELL1_SHA256 else None
    morph = Morphology(sections, nexus, {"kind": "file", "path": str(path.resolve()), "sha256": sha})
    morph.validate()
    return morph


class _ImportTarget:
    """The object Import3d instantiates into (it adds ``all``, ``soma``, ``dend``, ``apic``, ``axon``)."""

    def __str__(self) -> str:
        return "import3d"


def _extract_geometry(target: _ImportTarget) -> tuple[SectionGeometry, ...]:
    """Copy the 3-D points and topology of Import3d's sections into SectionGeometry records, ordered
    soma, basal, apical, axon."""
    names = {}
    for attr in _IMPORT3D_LISTS:
        for i, sec in enumerate(getattr(target, attr, [])):
            names[sec] = f"{morphology.REGION_PREFIX[_IMPORT3D_LISTS[attr]]}[{i}]"
    unknown = [sec.name() for sec in getattr(target, "all", []) if sec not in names]
    if unknown:
        raise MorphologyError(f"sections of unsupported type (not soma/dend/apic/axon): {unknown[:5]}")
    out = []
    for attr, region in _IMPORT3D_LISTS.items():
        for sec in getattr(target, attr, []):
            points = np.array([[sec.x3d(j), sec.y3d(j), sec.z3d(j), sec.diam3d(j)] for j in range(sec.n3d())])
            parent_seg = sec.parentseg()
            parent = names[parent_seg.sec] if parent_seg is not None else None
            parent_x = float(parent_seg.x) if parent_seg is not None else 0.0
            out.append(SectionGeometry(names[sec], region, parent, parent_x, points))
    return tuple(out)


class CellSimulator:
    """One cell in NEURON: build, run on input spikes, tear down. Use as a context manager.

    Attributes:
        cell, sim: the configs.
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
        self._vectors: dict[str, object] = {}
        self._dend_vectors: list = []
        self._step_vectors: dict[str, object] = {}
        _open_simulator = self
        try:
            self._build(h)
        except BaseException:
            self.close()
            raise

    # --- lifecycle ---------------------------------------------------------------------------------------------

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
        self._netcons.clear()
        self._point_processes.clear()
        self._vectors.clear()
        self._dend_vectors.clear()
        self._step_vectors.clear()
        for sec in reversed(list(self._sections.values())):
            h.delete_section(sec=sec)
        self._sections.clear()
        _open_simulator = None
        remaining = len(list(h.allsec()))
        if remaining:
            raise SimulationError(f"{remaining} NEURON sections survived close()")

    # --- building ----------------------------------------------------------------------------------------------

    def _build(self, h) -> None:
        source = morphology.resolve_morphology(self.cell.name, self.cell.morphology)
        morph = read_morphology(source) if isinstance(source, Path) else source
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
        soma = self._sections[self.morphology.region("soma")[0].name](0.5)
        # Two recordings of the soma: on the 0.125 ms grid (exact under CVode, which interpolates to it) and at
        # every step (fixed steps; NEURON's gridded recording picks a nearby step's value when the step does not
        # divide the grid, so the grid is interpolated from the steps instead).
        self._vectors["soma"] = _recording(h, soma._ref_v, HIRES_DT_MS)
        self._step_vectors["t"] = _recording(h, h._ref_t, None)
        self._step_vectors["soma"] = _recording(h, soma._ref_v, None)
        if self.morphology.nexus is not None:
            section, x = self.morphology.nexus
            self._vectors["nexus"] = _recording(h, self._sections[section](x)._ref_v, DT_MS)
        if self.sim.record_dendrites:
            for row in self._dendritic.itertuples(index=False):
                seg = self._sections[row.section](row.x)
                self._dend_vectors.append(_recording(h, seg._ref_v, DT_MS))

    # --- running -----------------------------------------------------------------------------------------------

    def run(self, input_spikes: np.ndarray, duration_ms: int,
            stimuli: Sequence[CurrentStep] = ()) -> SimResult:
        """Simulate ``duration_ms`` ms of input.

        Args:
            input_spikes: uint8/bool [n_synapses, T ≤ duration_ms] spike counts per 1 ms bin in synapse-table
                order; a spike in bin k is delivered at t = k ms.
            duration_ms: T, the number of 1 ms samples returned.
            stimuli: optional current steps (e.g. for validation protocols).
        """
        counts = np.asarray(input_spikes)
        if counts.ndim != 2 or counts.shape[0] != self.n_synapses or counts.shape[1] > duration_ms:
            raise ValueError(f"input_spikes must be [n_synapses = {self.n_synapses}, T <= {duration_ms}], "
                             f"got shape {counts.shape}")
        return self.run_spike_times(spike_matrix_to_times(counts), duration_ms, stimuli)

    def run_spike_times(self, spike_times: Sequence[np.ndarray], duration_ms: int,
                        stimuli: Sequence[CurrentStep] = ()) -> SimResult:
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
        clamps = [self._clamp(h, step) for step in stimuli]
        try:
            self._configure(h)
            h.finitialize(self.sim.v_init_mV)
            for nc, t in zip(self._netcons, times):
                for event in np.sort(t):
                    nc.event(float(event))
            if self.sim.method == "cvode":
                h.cvode.re_init()
            h.continuerun(float(duration_ms))
        except RuntimeError as exc:
            raise SimulationError(f"NEURON failed during the run: {exc}") from exc
        finally:
            clamps.clear()
        return self._collect(duration_ms)

    def _configure(self, h) -> None:
        h.celsius = self.sim.celsius_degC
        h.secondorder = self.sim.secondorder
        h.cvode.active(1 if self.sim.method == "cvode" else 0)
        if self.sim.method == "cvode":
            h.cvode.atol(self.sim.cvode_atol)
        else:
            h.dt = self.sim.dt_ms
            h.steps_per_ms = 1.0 / self.sim.dt_ms

    def _clamp(self, h, step: CurrentStep):
        if isinstance(step, EpscCurrent):
            return self._epsc_clamp(h, step)
        if step.site == "soma":
            seg = self._sections[self.morphology.region("soma")[0].name](0.5)
        elif step.site == "nexus" and self.morphology.nexus is not None:
            seg = self._sections[self.morphology.nexus[0]](self.morphology.nexus[1])
        elif _SEGMENT_SITE.match(step.site):
            seg = self._site_segment(step.site)
        else:
            raise ValueError(f"unknown current-step site {step.site!r} for this morphology")
        clamp = h.IClamp(seg)
        clamp.amp, clamp.delay, clamp.dur = step.amp_nA, step.delay_ms, step.dur_ms
        return clamp

    def _site_segment(self, site: str):
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

    def _epsc_clamp(self, h, epsc: EpscCurrent):
        """An IClamp whose amplitude follows the EPSC waveform (interpolated linearly, so it also drives CVode);
        returns the clamp and the two Vectors, which must stay alive during the run."""
        seg = self._site_segment(epsc.site)
        clamp = h.IClamp(seg)
        clamp.delay, clamp.dur = 0.0, 1e9
        t, i = epsc.waveform(_EPSC_SAMPLE_MS)
        t_vec, i_vec = h.Vector(t), h.Vector(i)
        i_vec.play(clamp._ref_amp, t_vec, 1)
        return clamp, t_vec, i_vec

    def add_probes(self, sites: Sequence[str]) -> None:
        """Also record the voltage at each site ("soma", "nexus" or a segment such as "apic[36](0.5)") every
        0.125 ms in every later run; read them with :meth:`probe_traces`."""
        h = _h()
        for site in sites:
            ref = self._site_segment(site)._ref_v
            self._vectors[f"probe:{site}"] = _recording(h, ref, HIRES_DT_MS)
            self._step_vectors[f"probe:{site}"] = _recording(h, ref, None)

    def probe_traces(self, duration_ms: int) -> dict[str, np.ndarray]:
        """site → float32 [8·duration_ms] voltage (mV) at t = 0, 0.125, ... ms of the last run, for every site
        added with :meth:`add_probes`."""
        return {key.split(":", 1)[1]: self._hires(key, int(duration_ms))
                for key in self._vectors if key.startswith("probe:")}

    def _hires(self, key: str, duration_ms: int) -> np.ndarray:
        """float32 [8·duration_ms]: recording ``key`` at t = 0, 0.125, ..., duration_ms − 0.125 ms of the last
        run (linear interpolation between fixed steps; CVode's own interpolation under CVode)."""
        n = duration_ms * int(round(DT_MS / HIRES_DT_MS))
        if self.sim.method == "cvode":
            values = self._vectors[key].as_numpy()
            if values.size < n:
                raise SimulationError(f"recorded {values.size} samples of {key}, expected {n}")
            return values[:n].astype(np.float32)
        t = self._step_vectors["t"].as_numpy()
        values = self._step_vectors[key].as_numpy()
        if t.size < 2 or t[-1] < (n - 1) * HIRES_DT_MS - 1e-6:
            raise SimulationError(f"the run of {key} stopped at t = {t[-1] if t.size else 0:g} ms, expected "
                                  f"{duration_ms} ms")
        return np.interp(np.arange(n) * HIRES_DT_MS, t, values).astype(np.float32)

    def _collect(self, duration_ms: int) -> SimResult:
        per_ms = int(round(DT_MS / HIRES_DT_MS))
        soma_hi = self._hires("soma", duration_ms)
        nexus = None
        if "nexus" in self._vectors:
            nexus = _first(self._vectors["nexus"], duration_ms, "nexus").astype(np.float32)
        dend = None
        if self._dend_vectors:
            dend = np.stack([_first(v, duration_ms, "dendritic") for v in self._dend_vectors],
                            axis=1).astype(np.float16)
        return SimResult(
            soma_mV=soma_hi[::per_ms].copy(),
            nexus_mV=nexus,
            spike_times_ms=detect_spikes(soma_hi, HIRES_DT_MS, self.sim.spike_threshold_mV),
            dend_mV=dend,
            soma_hires_mV=soma_hi,
        )

    # --- introspection -----------------------------------------------------------------------------------------

    def measure(self, names: Sequence[str] = ()) -> pd.DataFrame:
        """Per-segment quantities as NEURON sees them (an independent check of the pure tables).

        Columns: ``section``, ``region``, ``x``, ``area_um2``, ``distance_um`` (``h.distance`` from soma(0.5)),
        ``diam_um``, plus one column per range variable in ``names`` (NaN where it does not exist), e.g.
        ``"gIhbar_Ih"``, ``"cm"``.
        """
        h = _h()
        soma = self._sections[self.morphology.region("soma")[0].name](0.5)
        rows = []
        for geom in self.morphology.sections:
            for seg in self._sections[geom.name]:
                row = {"section": geom.name, "region": geom.region, "x": seg.x, "area_um2": seg.area(),
                       "distance_um": h.distance(soma, seg), "diam_um": seg.diam}
                for name in names:
                    row[name] = getattr(seg, name, np.nan)
                rows.append(row)
        return pd.DataFrame(rows)

    def provenance(self) -> dict:
        """JSON-serialisable: cell and sim configs, morphology origin (path + sha256, or generator version),
        biophysics JSON path + sha256, mechanism hash, NEURON version, segment and synapse counts."""
        from biophys.mechanisms.build import neuron_version

        counts = self.segments.groupby("region").size()
        return {
            "cell": dataclasses.asdict(self.cell),
            "sim": dataclasses.asdict(self.sim),
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


def _recording(h, reference, interval_ms: float | None):
    """A Vector that records ``reference`` every ``interval_ms`` from t = 0, or at every time step when None
    (refilled by every finitialize)."""
    vector = h.Vector()
    if interval_ms is None:
        vector.record(reference)
    else:
        vector.record(reference, interval_ms)
    return vector


def _first(vector, n: int, what: str) -> np.ndarray:
    """The first ``n`` samples of a recording Vector, copied to NumPy (float64)."""
    values = vector.as_numpy()
    if values.size < n:
        raise SimulationError(f"recorded {values.size} {what} samples, expected {n}")
    return values[:n].copy()


# --- command line ----------------------------------------------------------------------------------------------


@dataclass
class SimulationInputs:
    """Input spike trains read from a file.

    Attributes:
        spike_times: per simulation, one float64 array of spike times (ms) per synapse in dataset order.
        duration_ms: T, the simulated duration of every simulation.
        seeds: int64 [n_sim] the simulations' seeds (a pickle's index when it has none).
        sim_index: int64 [n_sim] the simulations' indices in the source.
        source: a short description of where they came from.
    """

    spike_times: list[list[np.ndarray]]
    duration_ms: int
    seeds: np.ndarray
    sim_index: np.ndarray
    source: str


def read_inputs(path: str | Path) -> SimulationInputs:
    """Read the input spike trains of a NeuronIO dataset store (a directory) or an original NeuronIO pickle.

    A pickle holds ``exInputSpikeTimes`` / ``inhInputSpikeTimes`` (segment index → times in ms) per simulation;
    excitatory synapse k is row k, inhibitory synapse k is row n_segments + k, with n_segments from
    ``Params['allSegmentsType']``. Only open pickles you trust: unpickling can run code.
    """
    path = Path(path)
    if path.is_dir():
        from biophys.dataset import NeuronIOStore

        store = NeuronIOStore(path).load()
        spikes = store.ds["input_spikes"].values
        times = [spike_matrix_to_times(spikes[i].T) for i in range(store.n_sims)]
        return SimulationInputs(times, store.n_time, store.ds["seed"].values.astype(np.int64),
                                store.sim_ids.astype(np.int64), f"store {path}")
    if not path.is_file():
        raise FileNotFoundError(f"no input file or store at {path}")
    with open(path, "rb") as handle:
        try:
            original = pickle.load(handle, encoding="latin1")
            params = original["Params"]
            sims = original["Results"]["listOfSingleSimulationDicts"]
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is neither a NeuronIO store nor an original NeuronIO pickle: {exc}") from exc
    n_segments = len(params["allSegmentsType"])
    duration_ms = int(round(float(params["totalSimDurationInSec"]) * 1000.0))
    times = []
    for sim in sims:
        trains = [np.zeros(0)] * (2 * n_segments)
        for offset, key in ((0, "exInputSpikeTimes"), (n_segments, "inhInputSpikeTimes")):
            for segment, spikes in sim[key].items():
                trains[offset + int(segment)] = np.sort(np.asarray(spikes, dtype=np.float64))
        times.append(trains)
    index = np.arange(len(sims), dtype=np.int64)
    return SimulationInputs(times, duration_ms, index.copy(), index, f"pickle {path}")


def register_cli(subparsers) -> None:
    """Add ``simulate``: run the cell on the input spikes of a store or NeuronIO pickle, write a store."""
    parser = subparsers.add_parser(
        "simulate", help="simulate the cell on given input spike trains and write a NeuronIO store",
        description="Run the L5PC (or the ball-and-stick cell) on the input spike trains of a NeuronIO store or "
                    "an original NeuronIO pickle and write the results as a NeuronIO store.")
    parser.add_argument("--inputs", required=True, type=Path, help="input NeuronIO store (directory) or pickle")
    parser.add_argument("--out", required=True, type=Path, help="output store path (.zarr)")
    parser.add_argument("--cell", default="l5pc", choices=("l5pc", "ball-and-stick"))
    parser.add_argument("--morphology", default=None, help=".asc/.swc file (default: cached cell1.asc, else "
                                                           "the synthetic L5PC)")
    parser.add_argument("--synapse-model", default="ampa_nmda", choices=synapses.EXCITATORY_MODELS)
    parser.add_argument("--method", default="fixed", choices=("fixed", "cvode"))
    parser.add_argument("--dt-ms", type=float, default=SimConfig.dt_ms)
    parser.add_argument("--celsius", type=float, default=SimConfig.celsius_degC, help="temperature (°C)")
    parser.add_argument("--record-dendrites", action="store_true", help="store every dendritic segment's voltage")
    parser.add_argument("--max-sims", type=int, default=None, help="simulate only the first N simulations")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output store")
    parser.set_defaults(func=_simulate_command)


def _simulate_command(args: argparse.Namespace) -> int:
    from biophys import dataset
    from conventions.provenance import provenance as code_provenance

    cell = CellConfig(args.cell, args.morphology, args.synapse_model)
    sim_config = SimConfig(dt_ms=args.dt_ms, method=args.method, celsius_degC=args.celsius,
                           record_dendrites=args.record_dendrites)
    if args.out.exists() and not args.overwrite:
        print(f"error: {args.out} already exists; pass --overwrite to replace it")
        return 1
    inputs = read_inputs(args.inputs)
    count = len(inputs.spike_times) if args.max_sims is None else min(args.max_sims, len(inputs.spike_times))
    T = inputs.duration_ms
    with CellSimulator(cell, sim_config) as sim:
        if len(inputs.spike_times[0]) != sim.n_synapses:
            print(f"error: {inputs.source} has {len(inputs.spike_times[0])} input channels, the cell has "
                  f"{sim.n_synapses} synapses")
            return 1
        spikes = np.zeros((count, T, sim.n_synapses), np.uint8)
        soma = np.zeros((count, T), np.float32)
        nexus = np.zeros((count, T), np.float32)
        dend = np.zeros((count, T, sim.n_synapses // 2), np.float16) if args.record_dendrites else None
        out_times = []
        for i in range(count):
            trains = inputs.spike_times[i]
            result = sim.run_spike_times(trains, T)
            for k, train in enumerate(trains):
                np.add.at(spikes[i, :, k], train.astype(np.int64), 1)
            soma[i] = result.soma_mV
            if result.nexus_mV is not None:
                nexus[i] = result.nexus_mV
            if dend is not None:
                dend[i] = result.dend_mV
            out_times.append(result.spike_times_ms)
            print(f"simulation {i + 1}/{count}: {len(result.spike_times_ms)} output spikes")
        config = {"command": "simulate", "inputs": inputs.source, "cell": dataclasses.asdict(cell),
                  "sim": dataclasses.asdict(sim_config)}
        prov = {**code_provenance(), **sim.provenance()}
        ds = dataset.build_dataset(spikes, soma, out_times, inputs.seeds[:count], sim.synapses, config, prov,
                                   nexus_voltage=nexus if sim.morphology.nexus is not None else None,
                                   dendritic_voltage=dend, sim_index=inputs.sim_index[:count])
    dataset.write_store(ds, args.out, overwrite=args.overwrite)
    print(args.out)
    return 0

