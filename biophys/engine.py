"""Integration engines: NEURON's own integrator or CoreNEURON, driven by :class:`biophys.simulator.CellSimulator`.

``engine = "neuron"`` is the reference path: ``finitialize``, the input events queued with ``NetCon.event``,
``continuerun``. ``"coreneuron"`` (fixed steps only) hands the model NEURON built and initialised, queued
events included, to CoreNEURON (``ParallelContext.psolve``), which integrates it in its own memory layout with
the mechanism library of :func:`biophys.mechanisms.build.compile_coreneuron` and copies states and recordings
back. What CoreNEURON needs of the model (NEURON, "CoreNEURON compatibility" and "Running a simulation"):
``cvode.cache_efficient(1)``; every NetCon delay > 0, since the smallest delay is its event-exchange interval
(the input NetCons have no source, so their delay never shifts an event queued with ``NetCon.event``); a
maximum step for that interval (``set_maxstep``); Vectors that record at every step (one recorded at an interval
or at given times comes back with its t = 0 sample only), so the 1 ms recordings (nexus, dendrites) hold every
step while a run lasts (8 bytes per step per recorded segment) and are subsampled after it.

Where CoreNEURON cannot run (CVode; a NEURON without CoreNEURON; a library that does not compile),
:func:`choose` falls back to NEURON and says so in one line on stderr. This module never imports NEURON's ``h``;
the simulator hands it over.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from biophys.config import SimConfig
#: CoreNEURON's event-exchange interval (ms): the input NetCons' delay and the maximum step of psolve's loop.
_EXCHANGE_MS = 10.0


def choose(sim: SimConfig) -> str:
    """The engine that runs ``sim``: its own, or "neuron" where CoreNEURON cannot run (said once on stderr)."""
    if sim.engine == "neuron":
        return "neuron"
    reason = _coreneuron_unavailable(sim.method)
    if reason is None:
        return "coreneuron"
    _say_once(f"CoreNEURON cannot run here ({reason}); simulating with NEURON")
    return "neuron"


@functools.cache
def _coreneuron_unavailable(method: str) -> str | None:
    """Why CoreNEURON cannot integrate with ``method`` in this process, or None when it can (the CoreNEURON
    library is then compiled and ``CORENEURONLIB`` points at it)."""
    if method != "fixed":
        return f"it integrates with fixed steps only, method = {method!r}"
    from biophys.mechanisms.build import MechanismError, use_coreneuron

    try:
        import neuron.coreneuron  # noqa: F401  (present only in a NEURON built with CoreNEURON)
    except ImportError as exc:
        return f"this NEURON has no CoreNEURON: {exc}"
    try:
        use_coreneuron()
    except MechanismError as exc:
        return f"its mechanism library did not compile: {str(exc).splitlines()[0]}"
    return None


@functools.cache
def _say_once(line: str) -> None:
    print(line, file=sys.stderr)


def prepare(h, sim: SimConfig, engine: str, netcons) -> None:
    """Set NEURON up for ``sim`` on ``engine`` before ``finitialize``: temperature, integration method and step;
    CoreNEURON's cache-efficient layout, NetCon delays and exchange interval, or NEURON's defaults (delay 0, the
    standard layout) for the reference path."""
    h.celsius = sim.celsius_degC
    h.secondorder = sim.secondorder
    h.cvode.active(1 if sim.method == "cvode" else 0)
    if sim.method == "cvode":
        h.cvode.atol(sim.cvode_atol)
    else:
        h.dt = sim.dt_ms
        h.steps_per_ms = 1.0 / sim.dt_ms
    coreneuron = engine == "coreneuron"
    h.cvode.cache_efficient(1 if coreneuron else 0)
    delay = _EXCHANGE_MS if coreneuron else 0.0
    for netcon in netcons:
        netcon.delay = delay
    if coreneuron:
        h.ParallelContext().set_maxstep(_EXCHANGE_MS)


def queue_events(netcons, spike_times) -> None:
    """Queue one event per input spike (after ``finitialize``): ``spike_times[i]`` (float64 [n_i], ms) on
    ``netcons[i]``, in time order."""
    for netcon, times in zip(netcons, spike_times):
        for event in np.sort(times):
            netcon.event(float(event))


def advance(h, sim: SimConfig, engine: str, tstop_ms: float) -> None:
    """Integrate ``sim`` from the initialised state (events queued) to ``tstop_ms`` with ``engine``."""
    if engine == "neuron":
        if sim.method == "cvode":
            h.cvode.re_init()
        h.continuerun(tstop_ms)
        return
    from neuron import coreneuron

    coreneuron.enable = True
    coreneuron.verbose = 0
    try:
        h.ParallelContext().psolve(tstop_ms)
    finally:
        coreneuron.enable = False


def records_every_step(engine: str) -> bool:
    """Whether recordings at an interval must be made at every step and subsampled (CoreNEURON)."""
    return engine == "coreneuron"
