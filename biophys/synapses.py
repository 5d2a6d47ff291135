"""Synapse kinds and placement: one excitatory and one inhibitory synapse on every dendritic segment.

Pure Python/pandas; :mod:`biophys.simulator` creates the point processes from :class:`SynapseKind` and the
table of :func:`synapse_table`. The table order is the dataset's input order: every excitatory synapse
(basal segments, then apical; section then segment order), then every inhibitory one in the same segment
order. Each synapse is driven by its own NetCon with weight :data:`NETCON_WEIGHT` (one event = one release
that peaks at the synapse's gmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from biophys.l5pc import Biophysics

EXCITATORY_MODELS = ("ampa_nmda", "ampa")
#: Columns of :func:`synapse_table` (the dataset's per-synapse metadata, ``biophys.dataset.SYNAPSE_COLUMNS``).
COLUMNS = ("segment", "section", "x", "tree", "distance_um", "length_um", "kind", "sign",
           "pos_x_um", "pos_y_um", "pos_z_um")
SIGN = {"exc": 1, "inh": -1}


@dataclass(frozen=True)
class SynapseKind:
    """A synapse as data: ``point_process`` (NMODL name) with ``params`` (name → value; τ ms, gmax µS, e mV,
    mg mM), ``kind`` "exc" | "inh", and the NetCon ``weight`` of one input spike."""

    name: str
    point_process: str
    kind: str
    params: dict
    weight: float

    @property
    def sign(self) -> int:
        return SIGN[self.kind]


def synapse_kinds(biophysics: Biophysics, synapse_model: str) -> dict[str, SynapseKind]:
    """``{"exc": ..., "inh": ...}`` for an excitatory model ("ampa_nmda" | "ampa") and the biophysics'
    inhibitory synapse."""
    if synapse_model not in EXCITATORY_MODELS:
        raise ValueError(f"synapse_model must be one of {EXCITATORY_MODELS}, got {synapse_model!r}")
    weight = float(biophysics.data.get("netcon_weight", 1.0))
    kinds = {}
    for name in (synapse_model, biophysics.data["inhibitory_synapse"]):
        spec = biophysics.synapse(name)
        kinds[spec["kind"]] = SynapseKind(name, spec["point_process"], spec["kind"], dict(spec["params"]), weight)
    return kinds


def dendritic_segments(segments: pd.DataFrame) -> pd.DataFrame:
    """The basal then apical rows of a segment table (:func:`biophys.morphology.segment_table`), keeping
    section then segment order within each tree; index reset to 0..n−1."""
    parts = [segments[segments["region"] == tree] for tree in ("basal", "apical")]
    return pd.concat(parts, ignore_index=True)


def synapse_table(segments: pd.DataFrame) -> pd.DataFrame:
    """One row per synapse in dataset order, with :data:`COLUMNS`.

    Args:
        segments: a segment table with columns ``section``, ``x``, ``segment``, ``region``, ``length_um``,
            ``distance_um``, ``pos_{x,y,z}_um`` (any regions; only basal and apical rows are used).
    Returns:
        2·n_dendritic_segments rows: excitatory first, then inhibitory, each in :func:`dendritic_segments`
        order. ``distance_um`` is the path distance (µm) from soma(0.5) to the segment centre.
    """
    dend = dendritic_segments(segments)
    blocks = []
    for kind in ("exc", "inh"):
        block = pd.DataFrame({
            "segment": dend["segment"].astype(str), "section": dend["section"].astype(str),
            "x": dend["x"].astype(float), "tree": dend["region"].astype(str),
            "distance_um": dend["distance_um"].astype(float), "length_um": dend["length_um"].astype(float),
            "kind": kind, "sign": SIGN[kind],
            "pos_x_um": dend["pos_x_um"].astype(float), "pos_y_um": dend["pos_y_um"].astype(float),
            "pos_z_um": dend["pos_z_um"].astype(float),
        })
        blocks.append(block)
    table = pd.concat(blocks, ignore_index=True)
    table["sign"] = table["sign"].astype("int8")
    return table[list(COLUMNS)]
