COMMENT
Inhibitory GABA_A synapse (NeuronIO protocol), deterministic release.
Dual exponential g(t) = gmax f (exp(-t/tau_d) - exp(-t/tau_r)), normalised by
f = 1/(exp(-tp/tau_d) - exp(-tp/tau_r)), tp = tau_r tau_d/(tau_d - tau_r) ln(tau_d/tau_r), so that one
event of weight 1 peaks at gmax. Events of weight w add w to that peak (linear summation).
An event at t = 0 releases like any other (there is no release bookkeeping that could divide by zero).
Units: tau ms; gmax, g uS; e, v mV; i nA (positive outward).
The states decay exactly between events. NEURON integrates them with cnexp (and CVode from the
DERIVATIVE block); CoreNEURON's build (fixed steps only) solves PROCEDURE decay instead, which multiplies each
state by its one-step factor exp(-dt/tau), computed once in INITIAL, rather than cnexp's exp and divisions at
every step (the same update up to the last bit).
ENDCOMMENT

NEURON {
    POINT_PROCESS GabaASyn
    RANGE tau_r, tau_d, gmax, e, i, g
    NONSPECIFIC_CURRENT i
    THREADSAFE
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
}

PARAMETER {
    tau_r = 0.2 (ms)
    tau_d = 8 (ms)
    gmax = 0.001 (uS)
    e = -80 (mV)
}

ASSIGNED {
    decay_A
    decay_B
    v (mV)
    i (nA)
    g (uS)
    factor
}

STATE {
    A
    B
}

INITIAL {
    if (tau_r <= 0 || tau_d <= tau_r) {
        VERBATIM
        hoc_execerror("GabaASyn: need 0 < tau_r < tau_d", 0);
        ENDVERBATIM
    }
    factor = 1/(exp(-peak_time()/tau_d) - exp(-peak_time()/tau_r))
    decay_A = exp(-dt/tau_r)
    decay_B = exp(-dt/tau_d)
    A = 0
    B = 0
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    g = gmax*(B - A)
    i = g*(v - e)
    :CORENEURON CONDUCTANCE g
}

DERIVATIVE states {
    A' = -A/tau_r
    B' = -B/tau_d
}

NET_RECEIVE(weight) {
    A = A + weight*factor
    B = B + weight*factor
}

FUNCTION peak_time() (ms) {
    peak_time = tau_r*tau_d/(tau_d - tau_r)*log(tau_d/tau_r)
}

PROCEDURE decay() {
    : CoreNEURON's fixed-step update (see COMMENT)
    A = A*decay_A
    B = B*decay_B
}
