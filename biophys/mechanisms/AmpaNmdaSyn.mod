COMMENT
Excitatory synapse with an AMPA and an NMDA component (NeuronIO protocol), deterministic release.
Each component is a dual exponential g(t) = gmax f (exp(-t/tau_d) - exp(-t/tau_r)), normalised by
f = 1/(exp(-tp/tau_d) - exp(-tp/tau_r)), tp = tau_r tau_d/(tau_d - tau_r) ln(tau_d/tau_r), so that one
event of weight 1 peaks at gmax. Events of weight w add w to that peak (linear summation).
The NMDA conductance is gated by the magnesium block B(v) = 1/(1 + exp(-0.08 v) mg/3.57);
g_NMDA is the blocked conductance, mggate = B(v).
An event at t = 0 releases like any other (there is no release bookkeeping that could divide by zero).
Units: tau ms; gmax, g uS; e, v mV; mg mM; i nA (positive outward).
The states decay exactly between events. NEURON integrates them with cnexp (and CVode from the
DERIVATIVE block); CoreNEURON's build (fixed steps only) solves PROCEDURE decay instead, which multiplies each
state by its one-step factor exp(-dt/tau), computed once in INITIAL, rather than cnexp's exp and divisions at
every step (the same update up to the last bit).
ENDCOMMENT

NEURON {
    POINT_PROCESS AmpaNmdaSyn
    RANGE tau_r_AMPA, tau_d_AMPA, tau_r_NMDA, tau_d_NMDA, gmax_AMPA, gmax_NMDA, e, mg
    RANGE i, i_AMPA, i_NMDA, g_AMPA, g_NMDA, mggate
    NONSPECIFIC_CURRENT i
    THREADSAFE
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
    (mM) = (milli/liter)
}

PARAMETER {
    tau_r_AMPA = 0.3 (ms)
    tau_d_AMPA = 3 (ms)
    tau_r_NMDA = 2 (ms)
    tau_d_NMDA = 70 (ms)
    gmax_AMPA = 0.0004 (uS)
    gmax_NMDA = 0.0004 (uS)
    e = 0 (mV)
    mg = 1 (mM)
}

ASSIGNED {
    decay_A_AMPA
    decay_B_AMPA
    decay_A_NMDA
    decay_B_NMDA
    v (mV)
    i (nA)
    i_AMPA (nA)
    i_NMDA (nA)
    g_AMPA (uS)
    g_NMDA (uS)
    mggate
    factor_AMPA
    factor_NMDA
}

STATE {
    A_AMPA
    B_AMPA
    A_NMDA
    B_NMDA
}

INITIAL {
    factor_AMPA = peak_factor(tau_r_AMPA, tau_d_AMPA)
    factor_NMDA = peak_factor(tau_r_NMDA, tau_d_NMDA)
    decay_A_AMPA = exp(-dt/tau_r_AMPA)
    decay_B_AMPA = exp(-dt/tau_d_AMPA)
    decay_A_NMDA = exp(-dt/tau_r_NMDA)
    decay_B_NMDA = exp(-dt/tau_d_NMDA)
    A_AMPA = 0
    B_AMPA = 0
    A_NMDA = 0
    B_NMDA = 0
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    UNITSOFF
    mggate = 1/(1 + exp(-0.08*v)*mg/3.57)
    UNITSON
    g_AMPA = gmax_AMPA*(B_AMPA - A_AMPA)
    g_NMDA = gmax_NMDA*(B_NMDA - A_NMDA)*mggate
    i_AMPA = g_AMPA*(v - e)
    i_NMDA = g_NMDA*(v - e)
    i = i_AMPA + i_NMDA
}

DERIVATIVE states {
    A_AMPA' = -A_AMPA/tau_r_AMPA
    B_AMPA' = -B_AMPA/tau_d_AMPA
    A_NMDA' = -A_NMDA/tau_r_NMDA
    B_NMDA' = -B_NMDA/tau_d_NMDA
}

NET_RECEIVE(weight) {
    A_AMPA = A_AMPA + weight*factor_AMPA
    B_AMPA = B_AMPA + weight*factor_AMPA
    A_NMDA = A_NMDA + weight*factor_NMDA
    B_NMDA = B_NMDA + weight*factor_NMDA
}

FUNCTION peak_factor(tau_r (ms), tau_d (ms)) {
    LOCAL tp
    if (tau_r <= 0 || tau_d <= tau_r) {
        VERBATIM
        hoc_execerror("AmpaNmdaSyn: need 0 < tau_r < tau_d", 0);
        ENDVERBATIM
    }
    tp = tau_r*tau_d/(tau_d - tau_r)*log(tau_d/tau_r)
    peak_factor = 1/(exp(-tp/tau_d) - exp(-tp/tau_r))
}

PROCEDURE decay() {
    : CoreNEURON's fixed-step update (see COMMENT)
    A_AMPA = A_AMPA*decay_A_AMPA
    B_AMPA = B_AMPA*decay_B_AMPA
    A_NMDA = A_NMDA*decay_A_NMDA
    B_NMDA = B_NMDA*decay_B_NMDA
}
