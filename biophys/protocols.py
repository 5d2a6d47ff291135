"""Physiology protocols of Hay et al. (2011) on the L5PC, run through :class:`biophys.simulator.CellSimulator`.

Protocols (every number in :class:`ValidationConfig`): resting potential and somatic input resistance (a small
hyperpolarising step), firing under long somatic current steps (eFEL spike features, compared with the
published means ± SD of the experimental features of Hay et al. 2011), back-propagating AP amplitude along the
apical trunk (a brief strong somatic pulse), and BAC firing (a somatic spike plus a distal EPSC-shaped current → dendritic Ca spike and
somatic burst, while either input alone does not; Larkum et al. 1999). All run in one cell; each protocol
removes the probes it added. Features are in :mod:`biophys.features`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from biophys.features import compare_with_range, input_resistance_MOhm, spike_features, time_above_ms, window_mean
from biophys.morphology import Morphology, nseg_for_length, section_start_distances, segment_name
from biophys.stimuli import CurrentStep, EpscCurrent
from conventions.configkeys import field_names, refuse_unknown_keys
from conventions.signals import HIRES_DT_MS

#: Hay et al. (2011) experimental targets, mean and SD per feature for step levels 1, 2, 3 (the experimental features
#: of Hay et al. 2011).
PUBLISHED_STEP_TARGETS = {
    "mean_frequency": ((6.0, 1.2), (8.5, 1.0), (17.5, 0.8)),
    "AP_height": ((25.0, 3.1), (27.1, 3.1), (19.7, 3.7)),
    "AP_width": ((3.5, 0.9), (2.8, 0.7), (3.5, 0.9)),
    "time_to_first_spike": ((27.3, 5.7), (19.8, 2.9), (10.5, 1.4)),
    "doublet_ISI": ((62.8, 9.7), (44.0, 7.1), (22.8, 4.1)),
    "ISI_CV": ((0.11, 0.12), (0.07, 0.08), (0.07, 0.03)),
    "AHP_depth_abs": ((-60.4, 2.3), (-59.9, 1.8), (-57.1, 2.3)),
}
#: Back-propagating AP targets (mean, SD): somatic spike, and amplitude above baseline at trunk distances (µm).
PUBLISHED_BAP_TARGETS = {"AP_height": (25.0, 5.0), "AP_width": (2.0, 0.5)}
PUBLISHED_BAP_AMPLITUDE_MV = {660.0: (45.0, 10.0), 800.0: (36.0, 9.3)}
#: The original model's resting potential at the soma (mV) and input resistance (MΩ) (Hay et al. 2011's cell1).
ORIGINAL_REST_MV = -81.0
ORIGINAL_INPUT_RESISTANCE_MOHM = 44.0


@dataclass
class ValidationConfig:
    """Every amplitude, time and criterion of the validation protocols. JSON keys == field names.

    Attributes:
        rest_window_ms: (start, end) of the window (ms) whose mean somatic voltage is the resting potential.
        rin_step_nA: the hyperpolarising step for the input resistance (nA, < 0).
        rin_delay_ms, rin_dur_ms: its onset and duration (ms); the rest protocol runs until it ends.
        rin_average_ms: the steady-state voltage is the mean over the step's last this many ms.
        step_amps_nA: somatic step amplitudes (nA) for firing features.
        step_delay_ms, step_dur_ms, step_tail_ms: onset, duration and post-step time (ms) of those steps.
        published_steps_nA: the step amplitudes compared with the published step levels 1, 2, 3 (nA; Hay et
            al. used 0.619 / 0.793 / 1.507 nA on cell1; each must be one of ``step_amps_nA``).
        pulse_nA, pulse_delay_ms, pulse_dur_ms: the brief somatic pulse of the bAP and BAC protocols.
        pulse_total_ms: simulated time of one bAP/BAC run (ms).
        bap_distances_um: apical-trunk path distances (µm from soma(0.5)) where the bAP amplitude is read.
        epsc_peak_nA, epsc_tau_rise_ms, epsc_tau_decay_ms: the distal EPSC-shaped current of BAC firing.
        epsc_distance_um: its apical-trunk path distance (µm).
        epsc_lag_ms: EPSC onset after the somatic pulse onset (ms).
        bac_window_ms: somatic spikes and dendritic Ca spikes are counted this long after the pulse onset (ms).
        ca_spike_threshold_mV, ca_spike_min_ms: a Ca spike = the EPSC site's voltage above the threshold for at
            least this long (ms) in total.
        burst_min_spikes: a somatic burst has at least this many spikes in the BAC window (the pulse alone
            fires two APs in this axonal-initiation variant of the cell, so two are not a burst).
        spike_threshold_mV: eFEL's spike detection threshold (mV).
    """

    rest_window_ms: tuple[float, float] = (150.0, 200.0)
    rin_step_nA: float = -0.05
    rin_delay_ms: float = 200.0
    rin_dur_ms: float = 500.0
    rin_average_ms: float = 50.0
    step_amps_nA: tuple[float, ...] = (0.5, 0.8, 1.0, 1.5)
    step_delay_ms: float = 300.0
    step_dur_ms: float = 2000.0
    step_tail_ms: float = 100.0
    published_steps_nA: tuple[float, float, float] = (0.5, 0.8, 1.5)
    pulse_nA: float = 1.9
    pulse_delay_ms: float = 300.0
    pulse_dur_ms: float = 5.0
    pulse_total_ms: float = 450.0
    bap_distances_um: tuple[float, ...] = (200.0, 400.0, 600.0, 660.0, 800.0)
    epsc_peak_nA: float = 0.5
    epsc_tau_rise_ms: float = 0.5
    epsc_tau_decay_ms: float = 5.0
    epsc_distance_um: float = 620.0
    epsc_lag_ms: float = 5.0
    bac_window_ms: float = 100.0
    ca_spike_threshold_mV: float = -30.0
    ca_spike_min_ms: float = 10.0
    burst_min_spikes: int = 3
    spike_threshold_mV: float = -20.0

    def __post_init__(self):
        for name in ("step_amps_nA", "published_steps_nA", "bap_distances_um", "rest_window_ms"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.rin_step_nA >= 0:
            raise ValueError(f"rin_step_nA must be negative (hyperpolarising), got {self.rin_step_nA}")
        if not 0 <= self.rest_window_ms[0] < self.rest_window_ms[1] <= self.rin_delay_ms:
            raise ValueError(f"rest_window_ms {self.rest_window_ms} must lie within [0, rin_delay_ms]")
        if not 0 < self.rin_average_ms <= self.rin_dur_ms:
            raise ValueError("rin_average_ms must be in (0, rin_dur_ms]")
        missing = [a for a in self.published_steps_nA if a not in self.step_amps_nA]
        if len(self.published_steps_nA) != 3 or missing:
            raise ValueError(f"published_steps_nA must be 3 of step_amps_nA {self.step_amps_nA}, got "
                             f"{self.published_steps_nA}")
        if self.pulse_delay_ms + max(self.pulse_dur_ms, self.epsc_lag_ms + self.bac_window_ms) > self.pulse_total_ms:
            raise ValueError("pulse_total_ms is too short for the pulse, EPSC lag and BAC window")
        if min(self.step_dur_ms, self.step_delay_ms, self.pulse_dur_ms, self.epsc_distance_um) <= 0:
            raise ValueError("step/pulse durations, delays and the EPSC distance must be > 0")

    @classmethod
    def quick(cls) -> "ValidationConfig":
        """The reference protocol's 1 s steps (0.5 / 0.8 / 1.0 nA, as in reference_traces) instead of 2 s ones
        with 1.5 nA: about half the simulated time."""
        return cls(step_amps_nA=(0.5, 0.8, 1.0), step_dur_ms=1000.0, step_tail_ms=0.0,
                   published_steps_nA=(0.5, 0.8, 1.0))

    @classmethod
    def from_dict(cls, data: dict) -> "ValidationConfig":
        refuse_unknown_keys(data, field_names(cls), "ValidationConfig")
        return cls(**data)


PROTOCOLS = ("rest", "steps", "bap", "bac")


# --- where to record and inject ------------------------------------------------------------------------------


def apical_trunk(morph: Morphology) -> list[str]:
    """Section names of the apical trunk, proximal first: the path from the first apical section to the apical
    terminal farthest from the soma within the nexus section's subtree (within the whole apical tree when the
    morphology defines no nexus)."""
    starts = section_start_distances(morph)
    by_name = morph.by_name()
    apical = [s for s in morph.sections if s.region == "apical"]
    if not apical:
        raise ValueError("the morphology has no apical dendrite")
    root = morph.nexus[0] if morph.nexus is not None else apical[0].name
    subtree = set(section_start_distances(morph, origin=root))
    tip = max((s for s in apical if s.name in subtree), key=lambda s: starts[s.name] + s.length_um)
    path = [tip.name]
    while by_name[path[-1]].parent is not None and by_name[path[-1]].region == "apical":
        path.append(by_name[path[-1]].parent)
    return [name for name in reversed(path) if by_name[name].region == "apical"]


def trunk_site(morph: Morphology, distance_um: float) -> tuple[str, float]:
    """The trunk segment containing path distance ``distance_um`` (µm from soma(0.5)), as (site name such as
    "apic[36](0.5)" at the segment centre, the centre's distance in µm). Beyond the trunk's end: its last
    segment."""
    starts = section_start_distances(morph)
    by_name = morph.by_name()
    trunk = apical_trunk(morph)
    for i, name in enumerate(trunk):
        sec = by_name[name]
        if distance_um <= starts[name] + sec.length_um or i == len(trunk) - 1:
            n = nseg_for_length(sec.length_um)
            x = min(max((distance_um - starts[name]) / sec.length_um, 0.0), 1.0)
            index = min(int(x * n), n - 1)
            centre = (index + 0.5) / n
            return segment_name(name, centre), starts[name] + centre * sec.length_um
    raise AssertionError("unreachable: the trunk is never empty")


# --- protocols ------------------------------------------------------------------------------------------------


def _run(sim, duration_ms: float, stimuli=()):
    silent = [np.zeros(0)] * sim.n_synapses
    return sim.run_spike_times(silent, int(math.ceil(duration_ms)), stimuli)


def protocol_rest(sim, cfg: ValidationConfig) -> dict:
    """Resting potential (soma, nexus) and somatic input resistance from a small hyperpolarising step."""
    end = cfg.rin_delay_ms + cfg.rin_dur_ms
    result = _run(sim, end, [CurrentStep(cfg.rin_step_nA, cfg.rin_delay_ms, cfg.rin_dur_ms)])
    v = result.soma_hires_mV
    out = {"rest_mV": window_mean(v, HIRES_DT_MS, *cfg.rest_window_ms),
           "input_resistance_MOhm": input_resistance_MOhm(v, HIRES_DT_MS, cfg.rest_window_ms, end,
                                                          cfg.rin_average_ms, cfg.rin_step_nA)}
    if result.nexus_mV is not None:
        start, stop = (int(round(t)) for t in cfg.rest_window_ms)
        out["nexus_rest_mV"] = float(result.nexus_mV[start:stop].mean())
    return out


def protocol_steps(sim, cfg: ValidationConfig) -> dict:
    """eFEL features of every somatic step, and the published-range comparison for the three mapped steps."""
    total = cfg.step_delay_ms + cfg.step_dur_ms + cfg.step_tail_ms
    stim_end = cfg.step_delay_ms + cfg.step_dur_ms
    steps = {}
    for amp in cfg.step_amps_nA:
        result = _run(sim, total, [CurrentStep(amp, cfg.step_delay_ms, cfg.step_dur_ms)])
        features = spike_features(result.soma_hires_mV, HIRES_DT_MS, cfg.step_delay_ms, stim_end,
                                  cfg.spike_threshold_mV)
        in_step = result.spike_times_ms[(result.spike_times_ms >= cfg.step_delay_ms)
                                        & (result.spike_times_ms < stim_end)]
        steps[f"{amp:g}"] = {"amp_nA": amp, "spike_times_ms": in_step.tolist(), "n_spikes": int(in_step.size),
                             "features": features}
    published = {}
    for level, amp in enumerate(cfg.published_steps_nA):
        features = steps[f"{amp:g}"]["features"]
        published[f"step{level + 1}_{amp:g}nA"] = {
            name: compare_with_range(features.get(name), *targets[level])
            for name, targets in PUBLISHED_STEP_TARGETS.items()}
    return {"steps": steps, "published": published}


def protocol_bap(sim, cfg: ValidationConfig) -> dict:
    """A brief somatic pulse: somatic spike features and the AP amplitude above baseline along the trunk."""
    sites = [trunk_site(sim.morphology, d) for d in cfg.bap_distances_um]
    probes = list(dict.fromkeys(site for site, _ in sites))
    sim.attached.add_probes(probes)
    try:
        result = _run(sim, cfg.pulse_total_ms, [CurrentStep(cfg.pulse_nA, cfg.pulse_delay_ms, cfg.pulse_dur_ms)])
        traces = sim.probe_traces(int(math.ceil(cfg.pulse_total_ms)))
    finally:
        sim.attached.remove_probes(probes)
    onset = int(round(cfg.pulse_delay_ms / HIRES_DT_MS))
    soma = spike_features(result.soma_hires_mV, HIRES_DT_MS, cfg.pulse_delay_ms, cfg.pulse_total_ms,
                          cfg.spike_threshold_mV, ("spike_count", "AP_height", "AP_width", "spike_half_width"))
    trunk = []
    for target, (site, distance) in zip(cfg.bap_distances_um, sites):
        v = traces[site].astype(np.float64)
        amplitude = float(v[onset:].max() - v[onset - 1])
        entry = {"target_um": target, "site": site, "distance_um": distance, "amplitude_mV": amplitude}
        if target in PUBLISHED_BAP_AMPLITUDE_MV:
            entry["published"] = compare_with_range(amplitude, *PUBLISHED_BAP_AMPLITUDE_MV[target])
        trunk.append(entry)
    amplitudes = [t["amplitude_mV"] for t in trunk]
    return {"soma": soma,
            "published": {name: compare_with_range(soma.get(name), *target)
                          for name, target in PUBLISHED_BAP_TARGETS.items()},
            "trunk": trunk,
            "attenuates": bool(np.all(np.diff(amplitudes) < 0))}


def protocol_bac(sim, cfg: ValidationConfig) -> dict:
    """BAC firing: somatic pulse alone, distal EPSC alone, and both (EPSC ``epsc_lag_ms`` after the pulse)."""
    site, distance = trunk_site(sim.morphology, cfg.epsc_distance_um)
    pulse = CurrentStep(cfg.pulse_nA, cfg.pulse_delay_ms, cfg.pulse_dur_ms)
    epsc = EpscCurrent(cfg.epsc_peak_nA, cfg.pulse_delay_ms + cfg.epsc_lag_ms, cfg.epsc_tau_rise_ms,
                       cfg.epsc_tau_decay_ms, site)
    window = (cfg.pulse_delay_ms, cfg.pulse_delay_ms + cfg.bac_window_ms)
    runs = {}
    sim.attached.add_probes([site])
    try:
        for name, stimuli in (("soma_only", [pulse]), ("epsc_only", [epsc]), ("both", [pulse, epsc])):
            runs[name] = _bac_run(sim, cfg, stimuli, site, window)
    finally:
        sim.attached.remove_probes([site])
    bac = (runs["both"]["ca_spike"] and runs["both"]["burst"]
           and not any(runs[k]["ca_spike"] or runs[k]["burst"] for k in ("soma_only", "epsc_only")))
    return {"epsc_site": site, "epsc_distance_um": distance, "runs": runs, "bac_firing": bool(bac)}


def _bac_run(sim, cfg: ValidationConfig, stimuli, site: str, window: tuple[float, float]) -> dict:
    """One BAC run: somatic spikes in ``window`` (ms) and the Ca-spike criterion at the probe ``site``."""
    i0, i1 = (int(round(t / HIRES_DT_MS)) for t in window)
    result = _run(sim, cfg.pulse_total_ms, stimuli)
    dend = sim.probe_traces(int(math.ceil(cfg.pulse_total_ms)))[site][i0:i1]
    spikes = result.spike_times_ms[(result.spike_times_ms >= window[0]) & (result.spike_times_ms < window[1])]
    ca_ms = time_above_ms(dend, HIRES_DT_MS, cfg.ca_spike_threshold_mV)
    return {"n_somatic_spikes": int(spikes.size), "spike_times_ms": spikes.tolist(),
            "dendrite_peak_mV": float(dend.max()), "dendrite_time_above_ms": ca_ms,
            "ca_spike": bool(ca_ms >= cfg.ca_spike_min_ms), "burst": bool(spikes.size >= cfg.burst_min_spikes)}


_PROTOCOL_FUNCTIONS = {"rest": protocol_rest, "steps": protocol_steps, "bap": protocol_bap, "bac": protocol_bac}


def validate_cell(cell_config=None, sim_config=None, protocols: tuple[str, ...] = PROTOCOLS,
                  config: ValidationConfig | None = None) -> dict:
    """Build the cell once, run the chosen protocols and return a JSON-serialisable result.

    Args:
        cell_config, sim_config: :class:`~biophys.config.CellConfig` / ``SimConfig`` (defaults if None).
        protocols: a subset of :data:`PROTOCOLS`.
        config: the protocol numbers (defaults if None).
    Returns:
        {"config": ValidationConfig as dict, "provenance": the simulator's, "<protocol>": its result, ...,
        "checks": {name: bool} for the pass/fail comparisons with the original model and the published ranges}.
    """
    from biophys.simulator import CellSimulator

    unknown = [p for p in protocols if p not in _PROTOCOL_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; known: {list(PROTOCOLS)}")
    cfg = config if config is not None else ValidationConfig()
    out: dict = {"config": dataclasses.asdict(cfg)}
    with CellSimulator(cell_config, sim_config) as sim:
        out["provenance"] = sim.provenance()
        for name in protocols:
            out[name] = _PROTOCOL_FUNCTIONS[name](sim, cfg)
    out["checks"] = summarise_checks(out)
    return out


def summarise_checks(result: dict) -> dict[str, bool]:
    """Flat name → pass for every criterion present in a :func:`validate_cell` result."""
    checks: dict[str, bool] = {}
    if "rest" in result:
        checks["rest_within_2mV_of_original"] = abs(result["rest"]["rest_mV"] - ORIGINAL_REST_MV) <= 2.0
    if "steps" in result:
        for step, features in result["steps"]["published"].items():
            for name, comparison in features.items():
                checks[f"{step}.{name}"] = comparison["pass"]
    if "bap" in result:
        checks["bap.attenuates"] = result["bap"]["attenuates"]
        for name, comparison in result["bap"]["published"].items():
            checks[f"bap.{name}"] = comparison["pass"]
        for entry in result["bap"]["trunk"]:
            if "published" in entry:
                checks[f"bap.amplitude_{entry['target_um']:g}um"] = entry["published"]["pass"]
    if "bac" in result:
        checks["bac.firing"] = result["bac"]["bac_firing"]
    return checks
