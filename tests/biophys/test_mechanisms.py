"""The NMODL mechanisms against float64 NumPy versions of the spec's equations, and their compile-once cache.

Gate checks clamp one compartment per voltage (SEClamp, rs = 1 kOhm, so v sits within microvolts of the
command) and compare NEURON's gate states with the spec's formulas evaluated at the compartment's actual v.
cnexp integrates a gate exactly while v is constant, which is why long steady-state runs may use a coarse dt.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import constants
from scipy.optimize import curve_fit

from biophys.mechanisms import build

pytestmark = pytest.mark.neuron

REPO = Path(__file__).resolve().parents[2]
QT = 2.3 ** ((34 - 21) / 10)
VOLTAGES = np.array([-95.0, -80.0, -65.0, -50.0, -35.0, -20.0, 0.0, 25.0])


# ----- float64 reference kinetics, written from Hay et al. 2011 -----------------------------------------------

def _unsingular(v, v_singular):
    """The spec's rule: where a rate is 0/0, evaluate it 1e-4 mV higher."""
    return np.where(v == v_singular, v + 1e-4, v)


def _na_transient(v, m_half, h_half):
    """(m_inf, m_tau, h_inf, h_tau) of NaTs2_t (half-points -32, -60) and NaTa_t (-38, -66)."""
    u = _unsingular(v, m_half)
    am = 0.182 * (u - m_half) / (1 - np.exp(-(u - m_half) / 6))
    bm = 0.124 * (-u + m_half) / (1 - np.exp((u - m_half) / 6))
    u = _unsingular(v, h_half)
    ah = -0.015 * (u - h_half) / (1 - np.exp((u - h_half) / 6))
    bh = -0.015 * (-u + h_half) / (1 - np.exp((-u + h_half) / 6))
    return am / (am + bm), 1 / ((am + bm) * QT), ah / (ah + bh), 1 / ((ah + bh) * QT)


def _nap(v):
    _, m_tau_nata, _, _ = _na_transient(v, -38.0, -66.0)
    m_inf = 1 / (1 + np.exp((v + 52.6) / -4.6))
    h_inf = 1 / (1 + np.exp((v + 48.8) / 10))
    u = _unsingular(v, -17.0)
    ah = -2.88e-6 * (u + 17) / (1 - np.exp((u + 17) / 4.63))
    u = _unsingular(v, -64.4)
    bh = 6.94e-6 * (u + 64.4) / (1 - np.exp(-(u + 64.4) / 2.63))
    return m_inf, 6 * m_tau_nata, h_inf, 1 / ((ah + bh) * QT)


def _k_pst(v):
    u = v + 10
    m_tau = np.where(u < -50, 1.25 + 175.03 * np.exp(0.026 * u), 1.25 + 13 * np.exp(-0.026 * u)) / QT
    h_tau = (360 + (1010 + 24 * (u + 55)) * np.exp(-(((u + 75) / 48) ** 2))) / QT
    return 1 / (1 + np.exp(-(u + 1) / 12)), m_tau, 1 / (1 + np.exp((u + 54) / 11)), h_tau


def _k_tst(v):
    u = v + 10
    return (
        1 / (1 + np.exp(-u / 19)),
        (0.34 + 0.92 * np.exp(-(((u + 71) / 59) ** 2))) / QT,
        1 / (1 + np.exp((u + 66) / 10)),
        (8 + 49 * np.exp(-(((u + 73) / 23) ** 2))) / QT,
    )


def _skv3_1(v):
    return 1 / (1 + np.exp((v - 18.7) / -9.7)), 4 / (1 + np.exp((v + 46.56) / -44.14))


def _im(v):
    a = 3.3e-3 * np.exp(0.1 * (v + 35))
    b = 3.3e-3 * np.exp(-0.1 * (v + 35))
    return a / (a + b), 1 / ((a + b) * QT)


def _ih(v, vshift=0.0):
    vh = -154.9 + vshift
    u = _unsingular(v, vh)
    a = 0.00643 * (u - vh) / (np.exp((u - vh) / 11.9) - 1)
    b = 0.193 * np.exp((v - vshift) / 33.1)
    return a / (a + b), 1 / (a + b)


def _ca_hva(v):
    u = _unsingular(v, -27.0)
    am = 0.055 * (-27 - u) / (np.exp((-27 - u) / 3.8) - 1)
    bm = 0.94 * np.exp((-75 - v) / 17)
    ah = 0.000457 * np.exp((-13 - v) / 50)
    bh = 0.0065 / (np.exp((-v - 15) / 28) + 1)
    return am / (am + bm), 1 / (am + bm), ah / (ah + bh), 1 / (ah + bh)


def _ca_lvast(v):
    u = v + 10
    return (
        1 / (1 + np.exp((u + 30) / -6)),
        (5 + 20 / (1 + np.exp((u + 25) / 5))) / QT,
        1 / (1 + np.exp((u + 80) / 6.4)),
        (20 + 50 / (1 + np.exp((u + 40) / 7))) / QT,
    )


def _sk_z_inf(cai):
    return 1 / (1 + (0.00043 / np.maximum(cai, 1e-7)) ** 4.8)


def _dual_exp(t, tau_r, tau_d, gmax):
    """The spec's normalised dual exponential for one event at t = 0 (zero before it)."""
    tp = tau_r * tau_d / (tau_d - tau_r) * np.log(tau_d / tau_r)
    f = 1 / (np.exp(-tp / tau_d) - np.exp(-tp / tau_r))
    return np.where(t >= 0, gmax * f * (np.exp(-t / tau_d) - np.exp(-t / tau_r)), 0.0)


# name -> (reference returning (inf, tau) pairs per gate, gate names, ion reversal to set, exponents)
CHANNELS = {
    "NaTs2_t": (lambda v: _na_transient(v, -32.0, -60.0), ("m", "h"), (3, 1)),
    "NaTa_t": (lambda v: _na_transient(v, -38.0, -66.0), ("m", "h"), (3, 1)),
    "Nap_Et2": (_nap, ("m", "h"), (3, 1)),
    "K_Pst": (_k_pst, ("m", "h"), (2, 1)),
    "K_Tst": (_k_tst, ("m", "h"), (4, 1)),
    "SKv3_1": (_skv3_1, ("m",), (1,)),
    "Im": (_im, ("m",), (1,)),
    "Ih": (_ih, ("m",), (1,)),
    "Ca_HVA": (_ca_hva, ("m", "h"), (2, 1)),
    "Ca_LVAst": (_ca_lvast, ("m", "h"), (2, 1)),
}
CURRENT = {"NaTs2_t": "ina", "NaTa_t": "ina", "Nap_Et2": "ina", "K_Pst": "ik", "K_Tst": "ik", "SKv3_1": "ik",
           "Im": "ik", "Ih": "ihcn", "Ca_HVA": "ica", "Ca_LVAst": "ica"}
REVERSAL = {"ina": "ena", "ik": "ek", "ica": "eca"}


# ----- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def h():
    pytest.importorskip("neuron")
    build.load_mechanisms()
    from neuron import h as hoc

    hoc.load_file("stdrun.hoc")
    return hoc


class Bench:
    """Unconnected 10 um x 10 um single-compartment sections and the clamps on them, kept alive for one test."""

    def __init__(self, h):
        self.h = h
        self.made = []
        self.clamps = []

    def __call__(self, n=1):
        new = [self.h.Section(name=f"test_mech_{len(self.made) + i}") for i in range(n)]
        for sec in new:
            sec.L = sec.diam = 10
            sec.nseg = 1
        self.made.extend(new)
        return new

    def clamp(self, seg, v):
        """An SEClamp holding ``seg`` at ``v`` mV for the whole run (rs 1 kOhm: v within microvolts)."""
        clamp = self.h.SEClamp(seg)
        clamp.dur1 = 1e9
        clamp.amp1 = v
        clamp.rs = 1e-3
        self.clamps.append(clamp)
        return clamp


@pytest.fixture
def sections(h, request):
    """A Bench; its sections are deleted, and none may leak, at the end of a passing test.

    After a failure the traceback keeps the test's synapses and NetCons alive; deleting the sections under them
    makes the next simulation crash NEURON, so a failed test's sections are left in place instead.
    """
    before = sum(1 for _ in h.allsec())
    failures_before = request.session.testsfailed
    bench = Bench(h)
    yield bench
    h.cvode_active(0)
    h.dt = 0.025
    h.steps_per_ms = 40
    if request.session.testsfailed > failures_before:
        return
    bench.clamps.clear()
    for sec in bench.made:
        h.delete_section(sec=sec)
    bench.made.clear()
    assert sum(1 for _ in h.allsec()) == before, "test leaked NEURON sections"


def _v_seen_by_breakpoint(v, cvode):
    """The voltage a recorded current was computed from: under the fixed step, the previous sample's."""
    return v if cvode else np.concatenate([v[:1], v[:-1]])


def _run(h, tstop, dt=0.025, v_init=-65.0, events=()):
    h.cvode_active(0)
    h.dt = dt
    h.steps_per_ms = 1 / dt
    h.finitialize(v_init)
    for netcon, time in events:
        netcon.event(time)
    h.continuerun(tstop)


# ----- compile and load once --------------------------------------------------------------------------------

def test_load_twice_in_one_process_is_harmless(h):
    first = build.load_mechanisms()
    assert build.load_mechanisms() == first
    # Pretend another code path loaded the same library: the existence probe must prevent a second dlopen.
    build._loaded_dir = None
    assert build.load_mechanisms() == first
    assert build.find_library(first).name.startswith("libnrnmech")
    assert Path(first).parent == build.default_cache_dir()
    assert Path(first).name == build.mechanism_hash()


def test_all_mechanisms_are_registered(h):
    expected = ["NaTs2_t", "NaTa_t", "Nap_Et2", "K_Pst", "K_Tst", "SKv3_1", "SK_E2", "Im", "Ih", "Ca_HVA",
                "Ca_LVAst", "CaDynamics_E2", "AmpaNmdaSyn", "AmpaSyn", "GabaASyn", "GabaBSyn"]
    assert all(build._mechanism_exists(h, name) for name in expected)
    assert not build._mechanism_exists(h, "NoSuchMechanism")


def test_module_imports_without_neuron():
    code = "import sys, biophys.mechanisms.build as b; b.mechanism_hash(); print('neuron' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hash_follows_names_and_contents_not_location(tmp_path):
    copy = tmp_path / "mods"
    copy.mkdir()
    for source in build.mechanism_sources():
        (copy / source.name).write_bytes(source.read_bytes())
    original = build.mechanism_hash(copy)
    assert original == build.mechanism_hash()
    assert len(original) == 64

    edited = copy / "SKv3_1.mod"
    edited.write_text(edited.read_text() + "\n: edited\n")
    assert build.mechanism_hash(copy) != original

    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for source in build.mechanism_sources():
        name = "Zz.mod" if source.name == "SKv3_1.mod" else source.name
        (renamed / name).write_bytes(source.read_bytes())
    assert build.mechanism_hash(renamed) != original


def test_missing_source_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build.mechanism_sources(tmp_path / "nowhere")
    with pytest.raises(build.MechanismError, match="no .mod files"):
        build.compile_mechanisms(tmp_path / "cache", tmp_path)


def test_bad_mod_file_names_the_culprit(tmp_path):
    sources = tmp_path / "mods"
    sources.mkdir()
    (sources / "SKv3_1.mod").write_bytes((build.MECHANISM_DIR / "SKv3_1.mod").read_bytes())
    (sources / "broken.mod").write_text("NEURON {\n    SUFFIX broken\n}\nBREAKPOINT {\n    x = = 1\n}\n")
    cache = tmp_path / "cache"
    with pytest.raises(build.MechanismError) as failure:
        build.compile_mechanisms(cache, sources)
    headline = str(failure.value).splitlines()[0]
    assert "broken.mod" in headline and "SKv3_1.mod" not in headline
    assert "line 5" in str(failure.value)
    # Nothing half-built is left: no hash directory, no staging directory, only the lock file.
    assert [p.name for p in cache.iterdir()] == [f".{build.mechanism_hash(sources)}.lock"]


CONCURRENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from biophys.mechanisms import build

    runs = []
    compile_once = build._run_nrnivmodl

    def counting(workdir, sources):
        runs.append(str(workdir))
        compile_once(workdir, sources)

    build._run_nrnivmodl = counting
    cache, sources = Path(sys.argv[1]), Path(sys.argv[2])
    first = build.load_mechanisms(cache, sources)
    second = build.load_mechanisms(cache, sources)
    from neuron import h
    sec = h.Section(name="probe")
    sec.insert("NaTs2_t")
    print(json.dumps({"dir": str(first), "same": first == second, "compiles": len(runs)}))
    """
)


def test_concurrent_processes_compile_once(tmp_path):
    sources = tmp_path / "mods"
    sources.mkdir()
    for name in ("NaTs2_t.mod", "SKv3_1.mod"):
        (sources / name).write_bytes((build.MECHANISM_DIR / name).read_bytes())
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", CONCURRENT_SCRIPT, str(cache), str(sources)]
    workers = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["dir"] == results[1]["dir"] == str(cache / build.mechanism_hash(sources))
    assert all(r["same"] for r in results)
    assert sum(r["compiles"] for r in results) == 1
    assert build.find_library(Path(results[0]["dir"])) is not None
    leftovers = [p.name for p in cache.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert leftovers == []


# ----- channel kinetics -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_channel_steady_state_gates_and_current(h, sections, name):
    reference, gates, powers = CHANNELS[name]
    current = CURRENT[name]
    comps = sections(len(VOLTAGES))
    for sec, v in zip(comps, VOLTAGES):
        sec.insert(name)
        setattr(sec(0.5), f"g{name}bar_{name}", 1e-3)
        sections.clamp(sec(0.5), v)
    # The slowest gate (Nap_Et2 h, ~2 s) must settle to well below the tolerance: run 20 time constants.
    taus = reference(VOLTAGES)[1::2]
    _run(h, tstop=20 * float(np.max(taus)), dt=1.0)

    v = np.array([sec(0.5).v for sec in comps])
    assert np.all(np.abs(v - VOLTAGES) < 1e-3)
    expected_inf = reference(v)[0::2]
    g = np.full(len(comps), 1e-3)
    for gate, power, inf in zip(gates, powers, expected_inf):
        state = np.array([getattr(getattr(sec(0.5), name), gate) for sec in comps])
        np.testing.assert_allclose(state, inf, rtol=1e-6, atol=1e-9, err_msg=f"{name}.{gate}")
        g = g * state**power
    reversal = np.array([sec(0.5).Ih.ehcn if name == "Ih" else getattr(sec(0.5), REVERSAL[current])
                         for sec in comps])
    i = np.array([getattr(getattr(sec(0.5), name), current) for sec in comps])
    np.testing.assert_allclose(i, g * (v - reversal), rtol=1e-9, atol=1e-15)


TAU_CASES = [("NaTs2_t", "m", -20.0, 0.002), ("NaTs2_t", "h", -50.0, 0.025), ("Ih", "m", -90.0, 1.0),
             ("K_Pst", "h", -60.0, 5.0), ("Ca_HVA", "m", -10.0, 0.01), ("Ca_LVAst", "h", -70.0, 0.25)]


@pytest.mark.parametrize("name, gate, v_step, dt", TAU_CASES)
def test_channel_time_constant_from_relaxation(h, sections, name, gate, v_step, dt):
    reference, gates, _ = CHANNELS[name]
    (sec,) = sections(1)
    sec.insert(name)
    setattr(sec(0.5), f"g{name}bar_{name}", 0.0)
    sections.clamp(sec(0.5), v_step)
    tau_expected = float(reference(np.array([v_step]))[2 * gates.index(gate) + 1][0])
    trace = h.Vector().record(getattr(sec(0.5), f"_ref_{gate}_{name}"))
    times = h.Vector().record(h._ref_t)
    # Start from the steady state at -65 mV and step to v_step; fit the relaxation over ~6 time constants.
    _run(h, tstop=6 * tau_expected, dt=dt)
    t, x = np.array(times), np.array(trace)
    keep = t >= 2 * dt

    def relax(t, x_inf, x_0, tau):
        return x_inf + (x_0 - x_inf) * np.exp(-t / tau)

    (x_inf, _, tau), _ = curve_fit(relax, t[keep], x[keep], p0=(x[-1], x[0], tau_expected / 2))
    assert tau == pytest.approx(tau_expected, rel=1e-3)
    assert x_inf == pytest.approx(float(reference(np.array([v_step]))[2 * gates.index(gate)][0]), rel=1e-3)


def test_sk_e2_steady_state_follows_calcium(h, sections):
    cai = np.array([5e-5, 2e-4, 4.3e-4, 1e-3, 5e-3])
    comps = sections(len(cai))
    for sec, c in zip(comps, cai):
        sec.insert("SK_E2")
        sec(0.5).SK_E2.gSK_E2bar = 1e-3
        sections.clamp(sec(0.5), -60.0)
    h.cvode_active(0)
    h.dt = 0.025
    h.finitialize(-60.0)
    for sec, c in zip(comps, cai):
        sec(0.5).cai = c
    h.continuerun(20.0)
    z = np.array([sec(0.5).SK_E2.z for sec in comps])
    np.testing.assert_allclose(z, _sk_z_inf(cai), rtol=1e-6)
    assert z[2] == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose([sec(0.5).ik for sec in comps],
                               1e-3 * z * (np.array([sec(0.5).v for sec in comps]) - comps[0](0.5).ek),
                               rtol=1e-6)


def test_sk_e2_time_constant_is_one_ms(h, sections):
    (sec,) = sections(1)
    sec.insert("SK_E2")
    sections.clamp(sec(0.5), -60.0)
    trace = h.Vector().record(sec(0.5)._ref_z_SK_E2)
    times = h.Vector().record(h._ref_t)
    h.cvode_active(0)
    h.dt = 0.01
    h.finitialize(-60.0)
    sec(0.5).cai = 1e-3
    h.continuerun(5.0)
    t, z = np.array(times), np.array(trace)
    z_inf = float(_sk_z_inf(1e-3))
    keep = (t > 0.05) & (z_inf - z > 1e-6)
    slope = np.polyfit(t[keep], np.log(z_inf - z[keep]), 1)[0]
    assert -1 / slope == pytest.approx(1.0, rel=1e-3)


def test_ih_vshift_moves_the_activation_curve(h, sections):
    (sec,) = sections(1)
    sec.insert("Ih")
    sec(0.5).Ih.vshift = -10.0
    sections.clamp(sec(0.5), -80.0)
    _run(h, tstop=2000.0, dt=1.0)
    v = np.array([sec(0.5).v])
    assert sec(0.5).Ih.m == pytest.approx(float(_ih(v, vshift=-10.0)[0][0]), rel=1e-6)
    assert sec(0.5).Ih.m != pytest.approx(float(_ih(v)[0][0]), rel=1e-2)


def test_singular_points_are_finite(h, sections):
    singular = {"NaTs2_t": -32.0, "NaTa_t": -66.0, "Nap_Et2": -17.0, "Ca_HVA": -27.0, "Ih": -154.9}
    comps = sections(len(singular))
    for sec, (name, v) in zip(comps, singular.items()):
        sec.insert(name)
    h.cvode_active(0)
    h.dt = 0.025
    for sec, (name, v) in zip(comps, singular.items()):
        # finitialize sets every compartment to the same v, so initialise each at its own singular point.
        h.finitialize(v)
        reference, gates, _ = CHANNELS[name]
        expected = reference(np.array([v]))
        mech = getattr(sec(0.5), name)
        assert np.isfinite(mech.mInf) and np.isfinite(mech.mTau)
        assert mech.mInf == pytest.approx(float(expected[0][0]), rel=1e-9)
        if "h" in gates:
            assert mech.hInf == pytest.approx(float(expected[2][0]), rel=1e-9)


# ----- calcium shell ------------------------------------------------------------------------------------

def test_cadynamics_decays_to_min_cai(h, sections):
    (sec,) = sections(1)
    sec.insert("CaDynamics_E2")
    seg = sec(0.5)
    seg.CaDynamics_E2.decay = 35.725651
    seg.CaDynamics_E2.minCai = 2e-4
    trace = h.Vector().record(seg._ref_cai)
    times = h.Vector().record(h._ref_t)
    h.cvode_active(0)
    h.dt = 0.025
    h.finitialize(-76.0)
    seg.cai = 3e-3
    h.continuerun(300.0)
    t, cai = np.array(times), np.array(trace)
    expected = 2e-4 + (3e-3 - 2e-4) * np.exp(-t / 35.725651)
    np.testing.assert_allclose(cai[1:], expected[1:], rtol=1e-9)


def test_cadynamics_influx_and_nernst(h, sections):
    """Under a clamp with Ca_HVA open, cai settles where influx balances decay: the spec's equation at rest."""
    (sec,) = sections(1)
    sec.insert("Ca_HVA")
    sec.insert("CaDynamics_E2")
    seg = sec(0.5)
    seg.Ca_HVA.gCa_HVAbar = 1e-3
    seg.CaDynamics_E2.decay = 80.0
    seg.CaDynamics_E2.gamma = 0.01
    seg.CaDynamics_E2.depth = 0.2
    sections.clamp(seg, -10.0)
    _run(h, tstop=4000.0, dt=0.1, v_init=-10.0)
    faraday = constants.physical_constants["Faraday constant"][0]
    influx = -10000 * seg.ica * 0.01 / (2 * faraday * 0.2)
    assert seg.ica < 0
    assert seg.cai == pytest.approx(1e-4 + influx * 80.0, rel=1e-6)
    nernst = 1e3 * constants.R * (273.15 + h.celsius) / (2 * faraday) * np.log(seg.cao / seg.cai)
    assert seg.eca == pytest.approx(nernst, rel=1e-6)


# ----- synapses ---------------------------------------------------------------------------------------------

SYNAPSES = {
    "AmpaSyn": {"tau_r": 0.3, "tau_d": 3.0, "gmax": 0.0004, "e": 0.0},
    "GabaASyn": {"tau_r": 0.2, "tau_d": 8.0, "gmax": 0.001, "e": -80.0},
    "GabaBSyn": {"tau_r": 3.5, "tau_d": 260.9, "gmax": 0.001, "e": -97.0},
}


@pytest.mark.parametrize("kind", sorted(SYNAPSES))
def test_synapse_defaults_match_the_spec(h, sections, kind):
    (sec,) = sections(1)
    syn = getattr(h, kind)(sec(0.5))
    for key, value in SYNAPSES[kind].items():
        assert getattr(syn, key) == value


@pytest.mark.parametrize("kind", sorted(SYNAPSES))
def test_synapse_isolated_event_peaks_at_gmax(h, sections, kind):
    p = SYNAPSES[kind]
    tp = p["tau_r"] * p["tau_d"] / (p["tau_d"] - p["tau_r"]) * np.log(p["tau_d"] / p["tau_r"])
    (sec,) = sections(1)
    syn = getattr(h, kind)(sec(0.5))
    sections.clamp(sec(0.5), -70.0)
    netcon = h.NetCon(None, syn)
    netcon.weight[0] = 1.0
    g = h.Vector().record(syn._ref_g)
    # A grid through the exact peak time, so the sampled maximum is the true one.
    dt = tp / 50
    _run(h, tstop=3 * tp, dt=dt, v_init=-70.0, events=[(netcon, 0.0)])
    assert max(g) == pytest.approx(p["gmax"], rel=1e-9)


@pytest.mark.parametrize("kind", sorted(SYNAPSES))
@pytest.mark.parametrize("cvode", [False, True])
def test_synapse_two_events_follow_the_dual_exponential(h, sections, kind, cvode):
    p = SYNAPSES[kind]
    (sec,) = sections(1)
    syn = getattr(h, kind)(sec(0.5))
    sections.clamp(sec(0.5), -70.0)
    netcon = h.NetCon(None, syn)
    netcon.weight[0] = 1.0
    times = h.Vector().record(h._ref_t)
    g = h.Vector().record(syn._ref_g)
    i = h.Vector().record(syn._ref_i)
    v = h.Vector().record(sec(0.5)._ref_v)
    tstop = 5.0 + 4 * p["tau_d"]
    h.cvode_active(int(cvode))
    if cvode:
        h.cvode.atol(1e-12)
    h.dt = 0.025
    h.finitialize(-70.0)
    netcon.event(0.0)
    netcon.event(5.0)
    h.continuerun(tstop)
    t, g, i, v = (np.array(x) for x in (times, g, i, v))

    def both(t):
        return _dual_exp(t, p["tau_r"], p["tau_d"], p["gmax"]) + _dual_exp(t - 5.0, p["tau_r"], p["tau_d"], p["gmax"])

    if cvode:
        expected, atol = both(t), 1e-6 * p["gmax"]
    else:
        # The fixed-step method evaluates BREAKPOINT before advancing the states, so g recorded at t is g(t - dt).
        expected, atol = both(t - h.dt), 1e-12 * p["gmax"]
    np.testing.assert_allclose(g, expected, rtol=0, atol=atol)
    # The event at t = 0 is released: the conductance is up within the first millisecond.
    assert g[t < 5.0].max() > 0.5 * p["gmax"]
    np.testing.assert_allclose(i, g * (_v_seen_by_breakpoint(v, cvode) - p["e"]), rtol=1e-9, atol=1e-15)


def test_synapse_weight_scales_linearly(h, sections):
    (sec,) = sections(1)
    syn = h.GabaASyn(sec(0.5))
    sections.clamp(sec(0.5), -70.0)
    netcon = h.NetCon(None, syn)
    netcon.weight[0] = 2.5
    times = h.Vector().record(h._ref_t)
    g = h.Vector().record(syn._ref_g)
    _run(h, tstop=30.0, v_init=-70.0, events=[(netcon, 0.0)])
    expected = 2.5 * _dual_exp(np.array(times) - h.dt, 0.2, 8.0, 0.001)
    np.testing.assert_allclose(np.array(g), expected, rtol=0, atol=1e-15)


def test_synapse_rejects_rise_slower_than_decay(h, sections):
    (sec,) = sections(1)
    syn = h.AmpaSyn(sec(0.5))
    syn.tau_r = 5.0
    with pytest.raises(RuntimeError, match="tau_r < tau_d"):
        h.finitialize(-70.0)


@pytest.mark.parametrize("cvode", [False, True])
def test_ampa_nmda_two_events_and_mg_block(h, sections, cvode):
    holds = np.array([-80.0, -40.0, 0.0, 20.0])
    comps = sections(len(holds))
    synapses, netcons, records = [], [], []
    for sec, v in zip(comps, holds):
        syn = h.AmpaNmdaSyn(sec(0.5))
        sections.clamp(sec(0.5), v)
        netcon = h.NetCon(None, syn)
        netcon.weight[0] = 1.0
        synapses.append(syn)
        netcons.append(netcon)
        records.append([h.Vector().record(ref) for ref in
                        (syn._ref_g_AMPA, syn._ref_g_NMDA, syn._ref_mggate, syn._ref_i, sec(0.5)._ref_v)])
    times = h.Vector().record(h._ref_t)
    h.cvode_active(int(cvode))
    if cvode:
        h.cvode.atol(1e-12)
    h.dt = 0.025
    h.finitialize(-70.0)
    for netcon in netcons:
        netcon.event(0.0)
        netcon.event(5.0)
    h.continuerun(300.0)
    t = np.array(times)
    t_eval = t if cvode else t - h.dt
    settled = t > 1.0
    for hold, syn, record in zip(holds, synapses, records):
        g_ampa, g_nmda, mggate, i, v = (np.array(x) for x in record)
        block = 1 / (1 + np.exp(-0.08 * v) * 1.0 / 3.57)
        ampa = _dual_exp(t_eval, 0.3, 3.0, 0.0004) + _dual_exp(t_eval - 5.0, 0.3, 3.0, 0.0004)
        nmda = _dual_exp(t_eval, 2.0, 70.0, 0.0004) + _dual_exp(t_eval - 5.0, 2.0, 70.0, 0.0004)
        atol = 1e-9 if cvode else 1e-15
        np.testing.assert_allclose(g_ampa, ampa, rtol=0, atol=atol)
        np.testing.assert_allclose(mggate[settled], block[settled], rtol=1e-6)
        np.testing.assert_allclose(g_nmda[settled], nmda[settled] * block[settled], rtol=1e-5, atol=atol)
        np.testing.assert_allclose(i, (g_ampa + g_nmda) * (_v_seen_by_breakpoint(v, cvode) - 0.0), rtol=1e-9,
                                   atol=1e-15)
        assert g_ampa[t < 5.0].max() > 0.5 * 0.0004
        assert syn.e == 0.0 and syn.mg == 1.0


def test_ampa_nmda_isolated_peaks(h, sections):
    for tau_r, tau_d, attr in ((0.3, 3.0, "AMPA"), (2.0, 70.0, "NMDA")):
        (sec,) = sections(1)
        syn = h.AmpaNmdaSyn(sec(0.5))
        # At +60 mV the block is ~0.99; divide it out to see the unblocked NMDA conductance.
        sections.clamp(sec(0.5), 60.0)
        netcon = h.NetCon(None, syn)
        netcon.weight[0] = 1.0
        g = h.Vector().record(getattr(syn, f"_ref_g_{attr}"))
        gate = h.Vector().record(syn._ref_mggate)
        tp = tau_r * tau_d / (tau_d - tau_r) * np.log(tau_d / tau_r)
        _run(h, tstop=2 * tp, dt=tp / 50, v_init=60.0, events=[(netcon, 0.0)])
        g = np.array(g) / (np.array(gate) if attr == "NMDA" else 1.0)
        assert np.nanmax(g) == pytest.approx(0.0004, rel=1e-6)
