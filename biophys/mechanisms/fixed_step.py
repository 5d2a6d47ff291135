"""The sources of CoreNEURON's mechanism library: each synapse's exact fixed-step decay in place of cnexp, and
the lines a ``.mod`` file reserves for CoreNEURON's build (conductance hints).

NEURON's library is built from the ``.mod`` files as they are: a synapse's states are a DERIVATIVE block that
``SOLVE states METHOD cnexp`` integrates at fixed steps and CVode integrates at its own. For a linear decay
``A' = -A/τ`` cnexp computes ``A + (1 - exp(dt·(-1/τ)))·(-(0/(-1/τ)) - A)`` at every step and instance (one
``exp`` and three divisions for what is ``A·exp(-dt/τ)``); with 1,278 synapses on cell1 these updates cost about
a tenth of a CoreNEURON run. A synapse whose ``.mod`` also defines ``PROCEDURE decay()`` (multiplying each state
by the one-step factor ``exp(-dt/τ)`` its INITIAL block computes) is built for CoreNEURON, which integrates
with fixed steps only, with ``SOLVE decay`` in place of its cnexp SOLVE: the same update to the last bit, with
the same variables, so NEURON's model maps onto CoreNEURON's unchanged. The factors hold for the dt of the
``finitialize`` before the run (every run of :class:`biophys.simulator.CellSimulator` initialises with its dt).
NMODL logs "NeuronSolveVisitor :: solver method '' not supported" for each such SOLVE while it compiles: it
names no integration method because a procedure needs none, and the generated state update calls the procedure
(``tests/biophys/test_coreneuron_synapses.py`` checks the conductances against the closed form).

A line ``:CORENEURON <statement>`` is a comment to NEURON and the statement itself in CoreNEURON's build. The
channels and the linear synapses use it for NMODL's ``CONDUCTANCE`` hint: without one, every step evaluates each
mechanism's current twice, at v and v + 0.001 mV, to estimate di/dv by a difference; with one, once, and di/dv
is the named variable. For an ohmic current ``i = g·(v − e)`` whose g holds no v that variable is g, the
difference's own value up to rounding (CoreNEURON's traces on cell1 came out the same to float32), for ~2 % of
a run. The NMDA synapse keeps the difference: its analytic slope (magnesium block included) is as exact, but it
moved spikes of a strongly driven ball-and-stick cell by a step against NEURON's, beyond the same-dt bounds.

:data:`VERSION` enters the CoreNEURON build's cache key (:func:`biophys.mechanisms.build.coreneuron_hash`), so a
change of this rewriting rebuilds the library.
"""

from __future__ import annotations

import re

#: Part of the CoreNEURON build's identity: raise it whenever :func:`coreneuron_source` changes.
VERSION = 2
#: A mechanism with this procedure takes it as its fixed-step update.
FIXED_STEP_PROCEDURE = "decay"
_DEFINES = re.compile(rf"^\s*PROCEDURE\s+{FIXED_STEP_PROCEDURE}\s*\(\s*\)", re.MULTILINE)
_CNEXP_SOLVE = re.compile(r"^(\s*)SOLVE\s+states\s+METHOD\s+cnexp\s*$", re.MULTILINE)
#: A line for CoreNEURON's build only: ``:CORENEURON`` then the statement.
_CORENEURON_LINE = re.compile(r"^(\s*):CORENEURON[ \t]+(\S.*)$", re.MULTILINE)


class SourceError(ValueError):
    """A mechanism defines the fixed-step procedure but not the one cnexp SOLVE it replaces."""


def coreneuron_source(name: str, text: str) -> str:
    """The text CoreNEURON's build compiles for the ``.mod`` file ``name`` whose NEURON source is ``text``: its
    ``:CORENEURON`` lines uncommented and, where the file defines ``PROCEDURE decay()``, ``SOLVE decay`` in place
    of its one ``SOLVE states METHOD cnexp``.

    Raises:
        SourceError: the file defines the procedure but has no such SOLVE, or more than one.
    """
    text = _CORENEURON_LINE.sub(r"\1\2", text)
    if not _DEFINES.search(text):
        return text
    found = len(_CNEXP_SOLVE.findall(text))
    if found != 1:
        raise SourceError(f"{name} defines PROCEDURE {FIXED_STEP_PROCEDURE}() for CoreNEURON but has {found} "
                          "'SOLVE states METHOD cnexp' lines; it needs exactly one to replace")
    return _CNEXP_SOLVE.sub(rf"\1SOLVE {FIXED_STEP_PROCEDURE}", text)
