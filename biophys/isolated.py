"""One cell configuration simulated in a fresh spawned process, timed there: NEURON holds one model per process
and its settings are global, so engines or mechanism builds are compared side by side only this way.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from biophys.config import CellConfig, SimConfig
from biophys.recordings import SimResult


@dataclass
class IsolatedRun:
    """The results of :func:`run_isolated`.

    Attributes:
        results: one SimResult per input, in order.
        cpu_s: CPU seconds of the worker process over all runs (building the cell excluded).
        wall_s: wall seconds over all runs.
        engine: the engine that integrated (``SimConfig.engine`` or its NEURON fallback).
    """

    results: list[SimResult]
    cpu_s: float
    wall_s: float
    engine: str


def run_isolated(cell: CellConfig, sim: SimConfig, inputs: Sequence[Sequence[np.ndarray]],
                 duration_ms: int) -> IsolatedRun:
    """Build ``cell`` in a new spawned process and simulate each of ``inputs`` (per input: one float64 array of
    spike times in ms per synapse, see :meth:`biophys.simulator.CellSimulator.run_spike_times`) for
    ``duration_ms`` ms with ``sim``."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_simulate, (dataclasses.asdict(cell), dataclasses.asdict(sim), list(inputs), duration_ms))


def _simulate(cell: dict, sim: dict, inputs: list, duration_ms: int) -> IsolatedRun:
    from biophys.simulator import CellSimulator

    with CellSimulator(CellConfig.from_dict(cell), SimConfig.from_dict(sim)) as simulator:
        cpu, wall = time.process_time(), time.perf_counter()
        results = [simulator.run_spike_times(trains, duration_ms) for trains in inputs]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return IsolatedRun(results, cpu, wall, simulator.provenance()["engine"])
