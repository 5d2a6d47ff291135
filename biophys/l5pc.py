"""The L5PC biophysics as data (``l5pc.json``): loading, validation, and the per-section assignment plan.

:func:`load_biophysics` reads and validates the JSON; :func:`plan` turns it and a
:class:`~biophys.morphology.Morphology` into a :class:`BiophysicsPlan` — which mechanisms each section gets and
which range variables take which values — that :mod:`biophys.simulator` applies to the NEURON sections. The
rules are the same for every morphology (cell1.asc, the synthetic L5PC, the ball-and-stick cell):

- ``passive.all`` on every section, then ``passive.<region>`` overrides; ``Ra`` is per section.
- ``regions.<region>.<mechanism>.<parameter>`` inserts the mechanism on all sections of the region with a
  uniform value; ``ek``/``ena`` of ``ions`` are set where a mechanism uses K⁺/Na⁺.
- ``distributions.apical`` overrides a parameter per apical segment as a function of d, the path distance
  (µm) from the apical root's 0 end (``apic[0](0)``), and L, the largest d at the distal end of an apical
  terminal section. Values are evaluated at each segment centre, except that the last segment of every
  section takes the value at x = 1 (NEURON's ``for (x)`` loop visits x = 1 last and sets that segment).

Units: densities S/cm², cm µF/cm², Ra Ω·cm, potentials mV, decay ms, distances µm, synaptic gmax µS.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biophys.morphology import REGIONS, Morphology, section_start_distances

DEFAULT_PATH = Path(__file__).resolve().parent / "l5pc.json"

#: Density mechanisms compiled in biophys/mechanisms: their settable parameters and the ions they use.
MECHANISMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "NaTs2_t": (("gNaTs2_tbar",), ("na",)),
    "NaTa_t": (("gNaTa_tbar",), ("na",)),
    "Nap_Et2": (("gNap_Et2bar",), ("na",)),
    "K_Pst": (("gK_Pstbar",), ("k",)),
    "K_Tst": (("gK_Tstbar",), ("k",)),
    "SKv3_1": (("gSKv3_1bar",), ("k",)),
    "SK_E2": (("gSK_E2bar",), ("k", "ca")),
    "Im": (("gImbar",), ("k",)),
    "Ih": (("gIhbar", "vshift"), ()),
    "Ca_HVA": (("gCa_HVAbar",), ("ca",)),
    "Ca_LVAst": (("gCa_LVAstbar",), ("ca",)),
    "CaDynamics_E2": (("decay", "gamma", "depth", "minCai"), ("ca",)),
}
#: Point processes compiled in biophys/mechanisms and their settable parameters.
POINT_PROCESSES: dict[str, tuple[str, ...]] = {
    "AmpaNmdaSyn": ("tau_r_AMPA", "tau_d_AMPA", "tau_r_NMDA", "tau_d_NMDA", "gmax_AMPA", "gmax_NMDA", "e", "mg"),
    "AmpaSyn": ("tau_r", "tau_d", "gmax", "e"),
    "GabaASyn": ("tau_r", "tau_d", "gmax", "e"),
    "GabaBSyn": ("tau_r", "tau_d", "gmax", "e"),
}
PASSIVE_PARAMETERS = ("cm", "Ra", "e_pas", "g_pas")
ION_PARAMETERS = {"ek": "k", "ena": "na"}
#: Parameters that may be negative (potentials); every other number must be ≥ 0.
_SIGNED = {"e_pas", "ek", "ena", "e", "vshift", "offset"}
_DISTRIBUTION_PARAMS = {
    "exp_plateau": ("scale", "offset", "amplitude", "rate", "plateau_fraction"),
    "window": ("outside", "inside", "start_um", "end_um"),
}


class BiophysicsError(ValueError):
    """The biophysics JSON is unreadable or names an unknown mechanism/parameter or a bad value."""


@dataclass(frozen=True)
class Biophysics:
    """Validated biophysics. ``data`` is the parsed JSON; ``sha256`` the hash of the file's bytes."""

    data: dict
    path: str
    sha256: str

    def synapse(self, name: str) -> dict:
        """The synapse kind ``name`` of ``synapses``: ``{"point_process", "kind", "params"}``."""
        try:
            return self.data["synapses"][name]
        except KeyError:
            raise BiophysicsError(f"unknown synapse kind {name!r}; the biophysics defines "
                                  f"{sorted(self.data['synapses'])}") from None


@dataclass(frozen=True)
class BiophysicsPlan:
    """What to do to the sections.

    Attributes:
        inserts: section name → density mechanism suffixes to insert (``"pas"`` included).
        values: rows in application order with columns ``section``, ``x`` (segment centre, NaN for every
            segment of the section), ``name`` (NEURON name: ``"Ra"``, ``"cm"``, ``"g_pas"``, ``"ek"``,
            ``"gIhbar_Ih"``, ...), ``value``.
    """

    inserts: dict[str, tuple[str, ...]]
    values: pd.DataFrame


def load_biophysics(path: str | Path | None = None) -> Biophysics:
    """Read and validate the biophysics JSON (default: ``biophys/l5pc.json``)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise BiophysicsError(f"cannot read biophysics {path}: {exc}") from exc
    validate(data)
    return Biophysics(data, str(path), hashlib.sha256(raw).hexdigest())


def validate(data: dict) -> None:
    """Raise BiophysicsError listing every problem: unknown sections of the file, regions, mechanisms,
    parameters, distribution functions or point processes, and negative densities or time constants."""
    problems: list[str] = []
    for key in ("passive", "ions", "regions", "distributions", "synapses", "inhibitory_synapse"):
        if key not in data:
            problems.append(f"missing top-level key {key!r}")
    if problems:
        raise BiophysicsError("invalid biophysics: " + "; ".join(problems))

    for region, params in data["passive"].items():
        if region != "all" and region not in REGIONS:
            problems.append(f"passive: unknown region {region!r}")
        for name, value in params.items():
            if name not in PASSIVE_PARAMETERS:
                problems.append(f"passive.{region}: unknown parameter {name!r}")
            _check_number(problems, f"passive.{region}.{name}", name, value)
    for name, value in data["ions"].items():
        if name not in ION_PARAMETERS:
            problems.append(f"ions: unknown parameter {name!r} (known: {sorted(ION_PARAMETERS)})")
        _check_number(problems, f"ions.{name}", name, value)
    for region, mechanisms in data["regions"].items():
        if region not in REGIONS:
            problems.append(f"regions: unknown region {region!r} (known: {list(REGIONS)})")
        for mechanism, params in mechanisms.items():
            _check_mechanism(problems, f"regions.{region}", mechanism, params)
    for region, rules in data["distributions"].items():
        if region in ("origin", "normalisation", "evaluate_at"):
            continue
        if region != "apical":
            problems.append(f"distributions: only 'apical' distributions are supported, got {region!r}")
            continue
        for rule in rules:
            where = f"distributions.apical[{rule.get('mechanism')}]"
            if rule.get("mechanism") not in MECHANISMS:
                problems.append(f"{where}: unknown mechanism {rule.get('mechanism')!r}")
            elif rule.get("parameter") not in MECHANISMS[rule["mechanism"]][0]:
                problems.append(f"{where}: unknown parameter {rule.get('parameter')!r}")
            elif rule["mechanism"] not in data["regions"].get("apical", {}):
                problems.append(f"{where}: the mechanism must also be listed in regions.apical")
            expected = _DISTRIBUTION_PARAMS.get(rule.get("function"))
            if expected is None:
                problems.append(f"{where}: unknown function {rule.get('function')!r} "
                                f"(known: {sorted(_DISTRIBUTION_PARAMS)})")
            elif set(rule.get("params", {})) != set(expected):
                problems.append(f"{where}: {rule['function']} needs params {list(expected)}")
            else:
                for name, value in rule["params"].items():
                    _check_number(problems, f"{where}.{name}", name, value)
    for name, spec in data["synapses"].items():
        point_process = spec.get("point_process")
        if point_process not in POINT_PROCESSES:
            problems.append(f"synapses.{name}: unknown point process {point_process!r}")
            continue
        if spec.get("kind") not in ("exc", "inh"):
            problems.append(f"synapses.{name}: kind must be 'exc' or 'inh'")
        for param, value in spec.get("params", {}).items():
            if param not in POINT_PROCESSES[point_process]:
                problems.append(f"synapses.{name}: {point_process} has no parameter {param!r}")
            _check_number(problems, f"synapses.{name}.{param}", param, value)
    inhibitory = data["inhibitory_synapse"]
    if data["synapses"].get(inhibitory, {}).get("kind") != "inh":
        problems.append(f"inhibitory_synapse {inhibitory!r} is not an inhibitory entry of synapses")
    if problems:
        raise BiophysicsError("invalid biophysics: " + "; ".join(problems))


def _check_mechanism(problems: list[str], where: str, mechanism: str, params: dict) -> None:
    if mechanism not in MECHANISMS:
        problems.append(f"{where}: unknown mechanism {mechanism!r} (known: {sorted(MECHANISMS)})")
        return
    for name, value in params.items():
        if name not in MECHANISMS[mechanism][0]:
            problems.append(f"{where}.{mechanism}: unknown parameter {name!r} "
                            f"(known: {list(MECHANISMS[mechanism][0])})")
        _check_number(problems, f"{where}.{mechanism}.{name}", name, value)


def _check_number(problems: list[str], where: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        problems.append(f"{where}: {value!r} is not a finite number")
    elif value < 0 and name not in _SIGNED:
        problems.append(f"{where}: negative value {value} (densities, capacitances, resistances and time "
                        "constants must be >= 0)")


def distribution_value(function: str, params: dict, d_um: np.ndarray, length_um: float) -> np.ndarray:
    """A distributed parameter at path distances ``d_um`` (µm) from the apical root, L = ``length_um``.

    ``exp_plateau``: scale·(offset + amplitude·exp(rate·min(d/L, plateau_fraction))).
    ``window``: ``inside`` for start_um < d < end_um, else ``outside``.
    """
    d = np.asarray(d_um, dtype=float)
    if function == "exp_plateau":
        p = params
        return p["scale"] * (p["offset"] + p["amplitude"] * np.exp(p["rate"] * np.minimum(d / length_um,
                                                                                          p["plateau_fraction"])))
    if function == "window":
        inside = (d > params["start_um"]) & (d < params["end_um"])
        return np.where(inside, params["inside"], params["outside"])
    raise BiophysicsError(f"unknown distribution function {function!r}")


def apical_distances(morph: Morphology) -> tuple[pd.DataFrame, float]:
    """Where the apical distributions are evaluated.

    Returns:
        (table, L): one row per apical segment (sections in order, proximal first) with columns ``section``,
        ``x`` (segment centre), ``x_eval`` (centre, or 1 for a section's last segment), ``d_um`` (path
        distance in µm from the apical root's 0 end to ``x_eval``); and L, the largest distal-end distance of
        an apical terminal section (µm).
    """
    apical = morph.region("apical")
    if not apical:
        raise BiophysicsError("the morphology has no apical dendrite to distribute channels over")
    starts = section_start_distances(morph)
    origin = starts[apical[0].name]
    children = {s.parent for s in morph.sections}
    rows = []
    for sec in apical:
        n = sec.nseg
        for i in range(n):
            x = (i + 0.5) / n
            x_eval = 1.0 if i == n - 1 else x
            rows.append((sec.name, x, x_eval, starts[sec.name] - origin + x_eval * sec.length_um))
    table = pd.DataFrame(rows, columns=["section", "x", "x_eval", "d_um"])
    length = max(starts[s.name] - origin + s.length_um for s in apical if s.name not in children)
    return table, length


def plan(biophysics: Biophysics, morph: Morphology) -> BiophysicsPlan:
    """The insertions and values that realise ``biophysics`` on ``morph`` (see the module docstring)."""
    data = biophysics.data
    inserts: dict[str, tuple[str, ...]] = {}
    rows: list[tuple[str, float, str, float]] = []
    whole = np.nan
    for sec in morph.sections:
        mechanisms = data["regions"].get(sec.region, {})
        inserts[sec.name] = ("pas", *mechanisms)
        passive = {**data["passive"].get("all", {}), **data["passive"].get(sec.region, {})}
        rows += [(sec.name, whole, name, float(value)) for name, value in passive.items()]
        ions = {ion for mechanism in mechanisms for ion in MECHANISMS[mechanism][1]}
        rows += [(sec.name, whole, name, float(value)) for name, value in data["ions"].items()
                 if ION_PARAMETERS[name] in ions]
        for mechanism, params in mechanisms.items():
            rows += [(sec.name, whole, f"{name}_{mechanism}", float(value)) for name, value in params.items()]
    rules = data["distributions"].get("apical", [])
    if rules:
        table, length = apical_distances(morph)
        for rule in rules:
            values = distribution_value(rule["function"], rule["params"], table["d_um"].to_numpy(), length)
            name = f"{rule['parameter']}_{rule['mechanism']}"
            rows += [(s, x, name, float(v)) for s, x, v in zip(table["section"], table["x"], values)]
    return BiophysicsPlan(inserts, pd.DataFrame(rows, columns=["section", "x", "name", "value"]))
