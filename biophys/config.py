"""How to build and integrate a cell: the two configs the simulator, the stores and the CLIs share.

JSON keys equal field names; both are stored with every dataset (``config`` attribute, sections ``cell`` and
``sim``). Every field is type-checked on construction, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from biophys import synapses
from biophys.morphology import morphology_spec
from conventions.configkeys import check_field_types, field_names, refuse_unknown_keys
from conventions.signals import DT_MS

#: Integration engines (see :mod:`biophys.engine`).
ENGINES = ("neuron", "coreneuron")


@dataclass
class CellConfig:
    """Which cell to build. JSON keys == field names.

    Attributes:
        name: "l5pc" (the full cell) or "ball-and-stick" (a tiny demo/test cell with the same biophysics).
        morphology: "cell1" (Hay et al. 2011's reconstruction, from the cache, sha256-checked), "synthetic"
            (a deterministic L5PC-like geometry), a path to a .asc/.swc file, or None for the cell's fixed
            default ("synthetic" for "l5pc"; "ball-and-stick" only accepts None or "ball-and-stick"); see
            :func:`biophys.morphology.morphology_spec`.
        synapse_model: excitatory synapse kind, "ampa_nmda" or "ampa".
    """

    name: str = "l5pc"
    morphology: str | None = None
    synapse_model: str = "ampa_nmda"

    def __post_init__(self):
        check_field_types(self)
        if self.name not in ("l5pc", "ball-and-stick"):
            raise ValueError(f"CellConfig.name must be 'l5pc' or 'ball-and-stick', got {self.name!r}")
        morphology_spec(self.name, self.morphology)
        if self.synapse_model not in synapses.EXCITATORY_MODELS:
            raise ValueError(f"CellConfig.synapse_model must be one of {synapses.EXCITATORY_MODELS}, "
                             f"got {self.synapse_model!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "CellConfig":
        return _from_dict(cls, data)


@dataclass
class SimConfig:
    """How to integrate. JSON keys == field names.

    Attributes:
        dt_ms: fixed time step (ms); with "fixed" it must be 1/n ms for a whole n (0.025, 0.05, 0.0625, 0.1, ...),
            so that the dataset's 1 ms bins fall on steps; the 0.125 ms somatic grid is interpolated linearly
            between steps.
        method: "fixed" (backward Euler / Crank–Nicolson) or "cvode" (variable step).
        secondorder: NEURON's ``secondorder`` (0 = backward Euler, 2 = Crank–Nicolson) for "fixed".
        celsius_degC: temperature; enters only the Nernst calcium reversal (channel rates use a fixed qt).
        v_init_mV: initial membrane potential.
        cvode_atol: absolute tolerance for "cvode".
        spike_threshold_mV: output spikes are local maxima of the 8 kHz somatic trace above this.
        record_dendrites: also record every dendritic segment's voltage at 1 ms.
        engine: "neuron" (NEURON's integrator, the reference) or "coreneuron" (CoreNEURON with its tuned
            mechanism library; "fixed" only, elsewhere NEURON runs instead, saying so); see :mod:`biophys.engine`.
    """

    dt_ms: float = 0.025
    method: str = "fixed"
    secondorder: int = 0
    celsius_degC: float = 6.3
    v_init_mV: float = -76.0
    cvode_atol: float = 1e-3
    spike_threshold_mV: float = -25.0
    record_dendrites: bool = False
    engine: str = "neuron"

    def __post_init__(self):
        check_field_types(self)
        if self.engine not in ENGINES:
            raise ValueError(f"SimConfig.engine must be one of {ENGINES}, got {self.engine!r}")
        if self.method not in ("fixed", "cvode"):
            raise ValueError(f"SimConfig.method must be 'fixed' or 'cvode', got {self.method!r}")
        if self.secondorder not in (0, 1, 2):
            raise ValueError(f"SimConfig.secondorder must be 0, 1 or 2, got {self.secondorder}")
        if self.dt_ms <= 0 or self.cvode_atol <= 0:
            raise ValueError("SimConfig.dt_ms and cvode_atol must be > 0")
        steps = DT_MS / self.dt_ms
        if self.method == "fixed" and abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"SimConfig.dt_ms = {self.dt_ms} must be 1/n ms for a whole number n (e.g. 0.025, "
                             f"0.05, 0.0625, 0.1), so that the {DT_MS:g} ms dataset bins fall on time steps")

    @classmethod
    def from_dict(cls, data: dict) -> "SimConfig":
        return _from_dict(cls, data)


def _from_dict(cls, data: dict):
    """Build a config dataclass from its JSON dict, refusing unknown keys."""
    refuse_unknown_keys(data, field_names(cls), cls.__name__)
    return cls(**data)
