"""Which segment of the cell each segment of an original NeuronIO file is, when the file does not say.

The original files list their dendritic segments by tree (``allSegmentsType``), length (``allSegmentsLength``)
and path distance from the soma (``allSegments_DistFromSoma``), in the order of the original script (basal
sections then apical, each section's segments proximal first). Files without ``allSegments_SectionInd`` are given
segment names by matching those three against the dendritic segments of a morphology discretised by this
toolkit's rules (:func:`biophys.morphology.segment_table`): each file segment takes the first not yet taken
segment of the same tree whose length and distance agree within :data:`TOLERANCE_UM`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biophys import morphology, synapses
from biophys.morphology import MorphologyError, describe_morphology

#: How far (µm) a file segment's length and path distance may be from its morphology segment's.
TOLERANCE_UM = 1e-3
#: The columns a match takes from the morphology.
MATCHED_COLUMNS = ("segment", "section", "x", "pos_x_um", "pos_y_um", "pos_z_um")


class SegmentMatchError(ValueError):
    """The file's segments are not those of the morphology (the message names the first that differs)."""


def reference_segments(spec: str, h=None) -> pd.DataFrame:
    """The dendritic segments of morphology ``spec`` (a named morphology such as "cell1", or a .asc/.swc path)
    as this toolkit builds the L5PC from it: axon replaced, nseg rule, basal then apical rows with ``tree``,
    ``segment``, ``section``, ``x``, ``length_um``, ``distance_um`` and ``pos_*_um``.

    Files are read through NEURON's Import3d (``h``, default: NEURON imported here with import3d.hoc).
    Raises biophys.morphology.MorphologyError (one line) for a missing, uncached or bad morphology.
    """
    from biophys import morphology_io

    if h is None:
        from biophys.mechanisms.build import neuron_h

        h = neuron_h()
        h.load_file("import3d.hoc")
    morph = morphology.replace_axon(morphology_io.load_morphology("l5pc", spec, h))
    table = synapses.dendritic_segments(morphology.segment_table(morph))
    return table.rename(columns={"region": "tree"})


def match_segments(segments: pd.DataFrame, reference: pd.DataFrame, name: str) -> pd.DataFrame:
    """``segments`` (rows with ``tree``, ``length_um``, ``distance_um``) with :data:`MATCHED_COLUMNS` taken
    from the matching rows of ``reference`` (see the module docstring); ``name`` names the morphology in
    messages.

    Raises:
        SegmentMatchError: one line, when the counts differ, the file lacks lengths or distances, or a file
            segment has no counterpart left in the morphology.
    """
    if len(segments) != len(reference):
        raise SegmentMatchError(f"the file has {len(segments)} dendritic segments, morphology {name} has "
                                f"{len(reference)}")
    for column, key in (("length_um", "allSegmentsLength"), ("distance_um", "allSegments_DistFromSoma")):
        if segments[column].isna().any():
            raise SegmentMatchError(f"the file lacks {key}, so its segments cannot be matched to morphology {name}")
    ref_tree = reference["tree"].to_numpy()
    ref_length, ref_distance = reference["length_um"].to_numpy(), reference["distance_um"].to_numpy()
    taken = np.zeros(len(reference), dtype=bool)
    rows = np.empty(len(segments), dtype=np.int64)
    for i, (tree, length, distance) in enumerate(segments[["tree", "length_um", "distance_um"]].itertuples(False)):
        fits = (~taken & (ref_tree == tree) & (np.abs(ref_length - length) <= TOLERANCE_UM)
                & (np.abs(ref_distance - distance) <= TOLERANCE_UM))
        candidates = np.flatnonzero(fits)
        if not candidates.size:
            raise SegmentMatchError(f"segment {i} of the file ({tree}, {length:.4f} µm long, {distance:.4f} µm from "
                                    f"the soma) matches no segment of morphology {name}")
        rows[i] = candidates[0]
        taken[rows[i]] = True
    matched = segments.copy()
    for column in MATCHED_COLUMNS:
        matched[column] = reference[column].to_numpy()[rows]
    return matched


def identify_segments(segments: pd.DataFrame, morphology_spec: str | None) -> tuple[pd.DataFrame, dict]:
    """A file's ``segments`` (:func:`biophys.neuronio_format.segment_table`) named, and ``{"method": …}`` saying
    how: "allSegments_SectionInd" (named from the file already), "matched" (against morphology
    ``morphology_spec``, recorded with its sha256) or "none" (no section index and no morphology given).

    Raises:
        SegmentMatchError: one line, for a morphology that cannot be read or whose segments do not match.
    """
    if not (segments["section"] == "unknown").all():
        return segments, {"method": "allSegments_SectionInd"}
    if morphology_spec is None:
        return segments, {"method": "none"}
    try:
        reference = reference_segments(morphology_spec)
        described = describe_morphology("l5pc", morphology_spec)
    except MorphologyError as exc:
        raise SegmentMatchError(str(exc)) from None
    return match_segments(segments, reference, repr(morphology_spec)), {"method": "matched", **described}


def describe_identity(identity: dict) -> str:
    """One line saying how an imported store's segments were named (``identity`` from :func:`identify_segments`)."""
    if identity["method"] == "allSegments_SectionInd":
        return "segment names: from the file's allSegments_SectionInd"
    if identity["method"] == "matched":
        return (f"segment names: matched to morphology {identity['morphology']!r} by tree, length and path distance "
                "(the file has no allSegments_SectionInd)")
    return ("segment names: unknown (the file has no allSegments_SectionInd and no morphology was given to match "
            "against; pass --morphology)")
