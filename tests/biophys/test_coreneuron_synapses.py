"""CoreNEURON's build of the mechanisms (:mod:`biophys.mechanisms.fixed_step`): the sources it compiles, its cache
key, each synapse's conductance under CoreNEURON against the closed-form dual exponential, and the conductance
hints (ohmic currents name their g)."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from biophys.mechanisms import build, fixed_step

REPO = Path(__file__).resolve().parents[2]
#: Synapses with their own fixed-step update: point process → (conductance variable, τ rise, τ decay, gmax).
SYNAPSES = {"AmpaSyn": ("g", 0.3, 3.0, 0.0004), "GabaASyn": ("g", 0.2, 8.0, 0.001),
            "GabaBSyn": ("g", 3.5, 260.9, 0.001), "AmpaNmdaSyn": ("g_AMPA", 0.3, 3.0, 0.0004)}
EVENTS_MS = (0.0, 5.0)


def test_coreneuron_sources_replace_only_the_synapses_cnexp_solve_and_uncomment_their_own_lines():
    rewritten = set()
    for source in build.mechanism_sources():
        text = source.read_text()
        core = fixed_step.coreneuron_source(source.name, text)
        uncommented = re.sub(r"^(\s*):CORENEURON ", r"\1", text, flags=re.MULTILINE)
        assert len(core.splitlines()) == len(text.splitlines())
        changed = [(a.strip(), b.strip()) for a, b in zip(uncommented.splitlines(), core.splitlines()) if a != b]
        if changed:
            rewritten.add(source.stem)
            assert changed == [("SOLVE states METHOD cnexp", "SOLVE decay")]
            assert "PROCEDURE decay()" in core and "DERIVATIVE states" in core   # NEURON's CVode keeps its ODEs
        assert ":CORENEURON" not in core
    assert rewritten == set(SYNAPSES)


def _breakpoint(text: str) -> str:
    return re.search(r"^BREAKPOINT \{\n(.*?)^\}", text, re.S | re.M).group(1)


def test_every_ohmic_current_has_an_exact_conductance_hint_in_coreneurons_build_only():
    """Each mechanism with an ohmic current ``i = g*(v - e)`` names g as di/dv for CoreNEURON, where its
    BREAKPOINT computes g without v; the NMDA synapse (its block depends on v) and NEURON's texts have no hint."""
    hinted = set()
    for source in build.mechanism_sources():
        text = source.read_text()
        hints = re.findall(r"^\s*CONDUCTANCE (\w+)(?: USEION (\w+))?\s*$", fixed_step.coreneuron_source(
            source.name, text), re.MULTILINE)
        assert not re.search(r"^\s*CONDUCTANCE", text, re.MULTILINE)
        if not re.search(r"NONSPECIFIC_CURRENT|WRITE i", text) or source.stem == "AmpaNmdaSyn":
            assert hints == [], source.name
            continue
        assert len(hints) == 1, source.name
        hinted.add(source.stem)
        variable, ion = hints[0]
        body = _breakpoint(text)
        current = re.search(rf"^\s*(\w+) = {variable}\*\(v - \w+\)\s*$", body, re.MULTILINE)
        assert current, f"{source.name}: no ohmic current of {variable}"
        assert (f"WRITE {current.group(1)}" in text) == bool(ion)
        assignment = re.search(rf"^\s*{variable} = (.*)$", body, re.MULTILINE).group(1)
        assert not re.search(r"\bv\b", assignment), f"{source.name}: {variable} depends on v"
    assert {"NaTs2_t", "Ih", "Ca_HVA", "AmpaSyn", "GabaASyn"} <= hinted


@pytest.mark.parametrize("text, found", [
    ("BREAKPOINT {\n    SOLVE states METHOD derivimplicit\n}\nPROCEDURE decay() {\n}\n", 0),
    ("BREAKPOINT {\n    SOLVE states METHOD cnexp\n    SOLVE states METHOD cnexp\n}\nPROCEDURE decay() {\n}\n", 2),
])
def test_a_fixed_step_procedure_needs_one_cnexp_solve(text, found):
    with pytest.raises(fixed_step.SourceError, match=f"Bad.mod defines PROCEDURE decay.*has {found} "):
        fixed_step.coreneuron_source("Bad.mod", text)
    assert fixed_step.coreneuron_source("Plain.mod", text.replace("decay", "rates")) == text.replace("decay", "rates")


def test_rewriting_version_is_in_the_coreneuron_key(monkeypatch):
    key, neuron_key = build.coreneuron_hash(), build.mechanism_hash()
    monkeypatch.setattr(fixed_step, "VERSION", fixed_step.VERSION + 1)
    assert build.coreneuron_hash() != key
    assert build.mechanism_hash() == neuron_key


@pytest.mark.neuron
def test_builds_hold_their_own_sources():
    """The CoreNEURON build compiled the rewritten synapses; NEURON's (which CVode uses) the files as they are."""
    core, plain = build.compile_coreneuron(), build.compile_mechanisms()
    for name in SYNAPSES:
        assert "SOLVE decay" in (core / f"{name}.mod").read_text()
        assert "SOLVE states METHOD cnexp" in (plain / f"{name}.mod").read_text()


CONDUCTANCE_SCRIPT = textwrap.dedent("""
    import json, sys
    from biophys import engine
    from biophys.config import SimConfig
    from biophys.mechanisms.build import load_mechanisms, neuron_h

    synapses, dt = json.loads(sys.argv[1]), float(sys.argv[2])
    sim = SimConfig(dt_ms=dt, secondorder=2, engine="coreneuron")
    h = neuron_h()
    h.load_file("stdrun.hoc")
    load_mechanisms()
    assert engine.choose(sim) == "coreneuron"
    sec = h.Section(name="bench")
    sec.insert("pas")
    made, netcons, records = [], [], {}
    for name, variable in synapses.items():
        syn = getattr(h, name)(sec(0.5))
        netcon = h.NetCon(None, syn)
        netcon.weight[0] = 1.0
        made.append(syn)
        netcons.append(netcon)
        records[name] = h.Vector().record(getattr(syn, "_ref_" + variable))
    t = h.Vector().record(h._ref_t)
    engine.prepare(h, sim, "coreneuron", netcons)
    h.finitialize(-70.0)
    engine.queue_events(netcons, [[0.0, 5.0]] * len(netcons))
    engine.advance(h, sim, "coreneuron", 40.0)
    print(json.dumps({"t": list(t), **{name: list(v) for name, v in records.items()}}))
""")


def _dual_exponential(t, tau_r, tau_d, gmax):
    """One release at t = 0 of a synapse that peaks at gmax (float64 closed form; 0 before the release)."""
    tp = tau_r * tau_d / (tau_d - tau_r) * np.log(tau_d / tau_r)
    factor = 1.0 / (np.exp(-tp / tau_d) - np.exp(-tp / tau_r))
    s = np.clip(t, 0.0, None)
    return np.where(t >= 0, gmax * factor * (np.exp(-s / tau_d) - np.exp(-s / tau_r)), 0.0)


@pytest.mark.neuron
@pytest.mark.parametrize("dt", [1 / 12, 0.025])
def test_coreneuron_synapses_follow_the_dual_exponential(dt):
    """Two releases, at 0 and 5 ms, integrated by CoreNEURON: each conductance is the sum of two dual exponentials
    to 1e-12 of its peak (as NEURON's cnexp, the conductance recorded at t is that of t − dt)."""
    variables = {name: spec[0] for name, spec in SYNAPSES.items()}
    done = subprocess.run([sys.executable, "-c", CONDUCTANCE_SCRIPT, json.dumps(variables), repr(dt)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    traces = {key: np.array(value) for key, value in json.loads(done.stdout.splitlines()[-1]).items()}
    t = traces["t"]
    assert t.size == round(40.0 / dt) + 1
    for name, (_, tau_r, tau_d, gmax) in SYNAPSES.items():
        expected = sum(_dual_exponential(t - dt - event, tau_r, tau_d, gmax) for event in EVENTS_MS)
        assert traces[name].max() > 0.5 * gmax
        np.testing.assert_allclose(traces[name], expected, rtol=0, atol=1e-12 * gmax, err_msg=name)
