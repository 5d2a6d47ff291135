"""Evaluate a trained surrogate on whole held-out simulations of a NeuronIO store.

Each simulation is run from t = 0 and scored after one burn-in (by default the run's own ``burn_in_ms``, else
:data:`conventions.signals.BURN_IN_MS`), so every bin after the burn-in counts once, as in the evaluation of
Spieler et al. 2023 ("The ELM neuron", ICLR 2024, arXiv 2306.16922). The spike threshold for the timing metrics
is chosen on a validation store when one is given; otherwise on the evaluated store itself, which is optimistic
and said so in the result. A run that has not finished training is scored with the weights it has so far; the
result records its status (see :func:`unfinished_note`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis import cost, metrics
from biophys.dataset import NeuronIOStore, StoreError
from conventions.layout import LayoutError, channel_index
from conventions.scores import spike_auc
from conventions.signals import BURN_IN_MS, spikes_in_bins
from surrogate.data import NeuronIOArrays, store_layout
from surrogate.predict import model_channels, predict_store
from surrogate.models import model_input_width, num_params
from surrogate.run import Run, RunError, load_run

TPR_FPRS = (0.0025, 0.01)
#: metrics.json statuses of a run whose training ended (wall_budget: stopped by its time budget, resumable;
#: imported: published weights trained elsewhere, see surrogate.import_published)
FINAL_STATUSES = ("finished", "early_stopped", "wall_budget", "imported")


class AnalysisError(ValueError):
    """Inputs that cannot be evaluated together: a broken run or store, or a run trained on other data."""


@dataclass
class Evaluation:
    """One run scored on one store: the JSON-ready ``metrics`` and the ``predictions`` of
    :func:`surrogate.predict.predict_store` (for figures), with the run it came from."""

    run: Run
    metrics: dict
    predictions: dict


def open_run(run_dir: str | Path) -> Run:
    """:func:`surrogate.run.load_run`, with its errors as :class:`AnalysisError`."""
    try:
        return load_run(run_dir)
    except RunError as exc:
        raise AnalysisError(f"cannot use run {run_dir}: {exc}") from None


def open_store(path: str | Path) -> NeuronIOStore:
    """A store reader, with its errors as :class:`AnalysisError`."""
    try:
        return NeuronIOStore(path)
    except StoreError as exc:
        raise AnalysisError(f"cannot use data store {path}: {exc}") from None


def run_burn_in(run: Run) -> int:
    """The burn-in (ms) the run was trained with (its config's ``burn_in_ms``), else the shared default."""
    value = run.config.get("burn_in_ms")
    return BURN_IN_MS if value is None else int(value)


def unfinished_note(run: Run) -> str | None:
    """None for a run whose training ended; else one sentence saying that it is scored unfinished."""
    status = run.metrics.get("status")
    if status in FINAL_STATUSES:
        return None
    why = "records no final status" if status is None else f"has status {status!r}"
    return (f"run {run.path} {why}: training has not finished, so it is scored with the weights it has saved "
            "so far")


def load_arrays(store: NeuronIOStore) -> NeuronIOArrays:
    try:
        return NeuronIOArrays.from_store(store)
    except StoreError as exc:
        raise AnalysisError(str(exc)) from None


def cell_identity(provenance: dict) -> dict | None:
    """What identifies the simulated cell in a store's provenance (or in a run's record of a store, which may
    nest it under "provenance"), flattened to {"section.key": value}; None when no cell is recorded.

    Taken: the cell config (name, synapse model, …) except its morphology *option* (a path or None = automatic),
    the resolved morphology's origin except its path (sha256 or generator version), the biophysics file's sha256,
    and the synapse count. Paths are left out so that the same files elsewhere still match.
    """
    if not isinstance(provenance, dict):
        return None
    if not isinstance(provenance.get("cell"), dict):
        return cell_identity(provenance.get("provenance"))
    identity = {f"cell.{k}": v for k, v in provenance["cell"].items() if k != "morphology"}
    if isinstance(provenance.get("morphology"), dict):
        identity.update({f"morphology.{k}": v for k, v in provenance["morphology"].items() if k != "path"})
    if isinstance(provenance.get("biophysics"), dict) and "sha256" in provenance["biophysics"]:
        identity["biophysics.sha256"] = provenance["biophysics"]["sha256"]
    if "n_synapses" in provenance:
        identity["n_synapses"] = provenance["n_synapses"]
    return identity


def _store_cell(store: NeuronIOStore) -> str:
    """The store's cell and morphology as its provenance names them, for messages."""
    prov = store.provenance
    cell = prov.get("cell") if isinstance(prov.get("cell"), dict) else {}
    morphology = store.ds.attrs.get("morphology") or cell.get("morphology")
    return f"cell {cell.get('name', 'unnamed')!r}" + (f", morphology {morphology!r}" if morphology else "")


def check_synapses(run: Run, store: NeuronIOStore) -> str:
    """Check that ``store`` holds the input channels of ``run``: by the synapse layout the run recorded (segment
    and kind of each channel, whatever the store's order), else by count. Returns how they were matched.

    Raises:
        AnalysisError: one line naming a channel the store lacks (or holds besides), and the store's cell.
    """
    if run.layout is None:
        width = model_input_width(run.model)
        if width != store.n_synapses:
            raise AnalysisError(f"run {run.path} expects {width} input synapses but store {store.path} has "
                                f"{store.n_synapses}; evaluate on data from the same cell and synapse layout")
        return "ok: by position (the run records no synapse layout)"
    try:
        channel_index(run.layout, store_layout(store))
    except LayoutError as exc:
        unnamed = (store.ds["synapse_section"].values.astype(str) == "unknown").all()
        why = ("the store's segments are unnamed: import it again with `python -m biophys import-neuronio "
               "--morphology M`" if unnamed else "the run was trained on another cell's synapses")
        raise AnalysisError(f"run {run.path} cannot be scored on store {store.path} ({_store_cell(store)}): {exc}; "
                            f"{why}") from None
    return f"ok: {run.layout.n_channels} channels mapped by segment and kind"


def check_compatible(run: Run, store: NeuronIOStore) -> dict:
    """Check that ``run`` can be scored on ``store``: its synapses (:func:`check_synapses`), then what else the
    two record of the simulated cell (:func:`cell_identity`). The cell's name does not decide: the same synapses
    under another name (an original NeuronIO import, "original-neuronio", beside the toolkit's "l5pc") are noted.

    Returns:
        {"synapses": "ok: …", "cell": "ok" | "ok: …, named … here" | "unverified: <why>"}.
    Raises:
        AnalysisError: the store lacks the run's synapses, or the training store's cell record differs from this
            store's in more than the name (the message names the differing fields and both values).
    """
    synapses = check_synapses(run, store)
    trained = cell_identity(run.data_provenance.get("train", {}))
    here = cell_identity(store.provenance)
    if trained is None or here is None:
        which = "the run's training data" if trained is None else f"store {store.path}"
        return {"synapses": synapses, "cell": f"unverified: {which} records no cell provenance"}
    common = set(trained) & set(here)
    if not common:
        return {"synapses": synapses, "cell": "unverified: the two cell records share no field"}
    differing = sorted(k for k in common if trained[k] != here[k] and k != "cell.name")
    if differing:
        details = "; ".join(f"{k}: trained on {trained[k]!r}, store has {here[k]!r}" for k in differing)
        raise AnalysisError(f"run {run.path} was trained on another cell than store {store.path} holds ({details})")
    if "cell.name" in common and trained["cell.name"] != here["cell.name"]:
        return {"synapses": synapses, "cell": f"ok: the same synapses; the cell is named {trained['cell.name']!r} "
                                              f"in the training data, {here['cell.name']!r} here"}
    return {"synapses": synapses, "cell": "ok"}


def check_layout(run: Run, data: NeuronIOArrays, store: NeuronIOStore) -> np.ndarray | None:
    """The store channel of each model input (None: store order), by the synapse layout the run recorded.

    Raises:
        AnalysisError: the store does not hold the channels the run was trained on (one line, naming one).
    """
    try:
        return model_channels(run.model, data)
    except StoreError as exc:
        raise AnalysisError(f"run {run.path} cannot be scored on store {store.path}: {exc}") from None


def _timing_inputs(pred: dict) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Per-simulation (true spike times inside the scored stretch, probabilities, offsets) for metrics.spike_timing."""
    offset = pred["offset_ms"]
    end = offset + pred["spike_prob"].shape[1]
    true = [spikes_in_bins(t, offset, end) for t in pred["spike_times_ms"]]
    return true, list(pred["spike_prob"]), [offset] * len(true)


def _timing(true: list[np.ndarray], probs: list[np.ndarray], offsets: list[float], threshold: float | None) -> dict:
    """:func:`analysis.metrics.spike_timing` at ``threshold``; with no threshold, its keys with the thresholded
    values (threshold, n_pred, n_coincident, precision, recall, Γ) undefined rather than zero."""
    if threshold is not None:
        return metrics.spike_timing(true, probs, threshold, offsets)
    undefined = dict.fromkeys(("threshold", "n_pred", "n_coincident", "precision", "recall", "coincidence_factor"))
    return {**undefined, "window_ms": metrics.COINCIDENCE_WINDOW_MS, "n_true": int(sum(len(t) for t in true))}


def score(pred: dict) -> dict:
    """Spike and voltage metrics of one prediction dict (see :func:`surrogate.predict.predict_store`)."""
    fpr, tpr = metrics.roc(pred["spike_true"], pred["spike_prob"]) if pred["spike_true"].any() else (None, None)
    return {
        "spike_auc": spike_auc(pred["spike_true"], pred["spike_prob"]),
        "tpr_at_fpr": {f"{f:.2%}": (metrics.tpr_at_fpr(fpr, tpr, f) if fpr is not None else math.nan)
                       for f in TPR_FPRS},
        **metrics.soma_errors(pred["soma_true_mv"], pred["soma_pred_mv"]),
    }


def evaluate(run: Run, store: NeuronIOStore, burn_in_ms: int | None = None,
             valid_store: NeuronIOStore | None = None, data: NeuronIOArrays | None = None,
             valid_data: NeuronIOArrays | None = None, speed_batch: int = cost.SPEED_BATCH) -> Evaluation:
    """Score an opened run on an opened store (``data``, ``valid_data``: the stores' arrays, when already loaded).

    ``burn_in_ms`` None takes the run's own (:func:`run_burn_in`). Speed: :func:`analysis.cost.batched_speed`,
    ``speed_batch`` simulations per forward pass.

    Raises:
        AnalysisError: incompatible run and store(s), or a burn-in that leaves nothing to score.
    """
    burn_in_ms = run_burn_in(run) if burn_in_ms is None else burn_in_ms
    compatibility = check_compatible(run, store)
    if valid_store is not None:
        check_compatible(run, valid_store)
    data = load_arrays(store) if data is None else data
    check_layout(run, data, store)
    if not 0 <= burn_in_ms < data.n_time:
        raise AnalysisError(f"burn-in {burn_in_ms} ms leaves nothing of {data.n_time} ms simulations to score")

    pred = predict_store(run.model, data, burn_in_ms)

    true, probs, offsets = _timing_inputs(pred)
    if valid_store is not None:
        valid_data = load_arrays(valid_store) if valid_data is None else valid_data
        check_layout(run, valid_data, valid_store)
        valid_pred = predict_store(run.model, valid_data, burn_in_ms)
        threshold, unsupported = metrics.supported_threshold(*_timing_inputs(valid_pred))
        source = f"validation store {valid_store.path}"
    else:
        threshold, unsupported = metrics.supported_threshold(true, probs, offsets)
        source = "the evaluated store itself (no validation store given): optimistic"
    timing = _timing(true, probs, offsets, threshold)
    timing["threshold_source"] = source
    timing["threshold_unsupported"] = None if unsupported is None else f"the {source.split(' (')[0]} {unsupported}"

    macs, macs_method = cost.macs_per_ms(run.model, data.n_synapses)
    neuron_wall, neuron_reason = cost.neuron_wall_seconds(store.provenance)
    speed = cost.batched_speed(run.model, data, neuron_wall, neuron_reason, batch_size=speed_batch)

    result = {
        "name": run.path.name,
        "run": str(run.path),
        "model": run.config.get("model"),
        "run_status": run.metrics.get("status"),
        "unfinished": unfinished_note(run),
        "store": str(store.path),
        "n_sims": data.n_sims,
        "sim_ms": data.n_time,
        "burn_in_ms": burn_in_ms,
        "scored_ms": data.n_sims * (data.n_time - burn_in_ms),
        **score(pred),
        "spike_timing": timing,
        "params": num_params(run.model),
        "macs_per_ms": macs,
        "macs_method": macs_method,
        "speed": speed,
        "compatibility": compatibility,
        # the metrics published with an imported checkpoint, measured on the authors' own test data
        "published": run.metrics.get("published"),
        # history gets two records for an epoch cut by the wall budget and resumed; the trainer counts exactly
        "epochs_trained": run.metrics.get("epochs_completed", len(run.history)),
    }
    return Evaluation(run=run, metrics=json_safe(result), predictions=pred)


def evaluate_run(run_dir: str | Path, store_path: str | Path, burn_in_ms: int | None = None,
                 valid_store: str | Path | None = None, speed_batch: int = cost.SPEED_BATCH) -> dict:
    """Score the run in ``run_dir`` on every whole simulation of ``store_path`` after ``burn_in_ms`` (None: the
    run's own, :func:`run_burn_in`); ``speed_batch`` simulations per forward pass in the speed measurement.

    Returns:
        JSON-ready dict: spike_auc, tpr_at_fpr {"0.25%", "1.00%"}, rmse_mV, mae_mV, explained_variance,
        spike_timing (threshold, precision, recall, coincidence_factor, …), params, macs_per_ms, speed
        (simulated s per wall s, ratio to NEURON or null with a reason), compatibility, run_status (metrics.json
        status), unfinished (null, or the note of :func:`unfinished_note`), and where it came from. Undefined
        values (e.g. AUC without any spike) are null.
    Raises:
        AnalysisError: unreadable run or store, or a run that does not fit the store (synapses, cell).
    """
    run = open_run(run_dir)
    store = open_store(store_path)
    valid = open_store(valid_store) if valid_store is not None else None
    return evaluate(run, store, burn_in_ms, valid, speed_batch=speed_batch).metrics


def json_safe(obj):
    """``obj`` with NaN/inf floats replaced by None and NumPy scalars by Python ones (strict JSON)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
