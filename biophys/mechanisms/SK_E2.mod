COMMENT
Small-conductance calcium-activated potassium current (Hay et al. 2011).
g = gSK_E2bar * z, z_inf = 1/(1 + (0.00043 mM / cai)^4.8) with cai floored at 1e-7 mM,
z relaxing with a fixed 1 ms time constant (no voltage dependence).
Units: v, ek mV; cai mM; gSK_E2bar, gSK_E2 S/cm2; ik mA/cm2; zTau ms.
ENDCOMMENT

NEURON {
    SUFFIX SK_E2
    USEION k READ ek WRITE ik
    USEION ca READ cai
    RANGE gSK_E2bar, gSK_E2, ik, zInf, zTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
    (mM) = (milli/liter)
}

PARAMETER {
    gSK_E2bar = 0.000001 (S/cm2)
    zTau = 1 (ms)
}

ASSIGNED {
    v (mV)
    ek (mV)
    cai (mM)
    ik (mA/cm2)
    gSK_E2 (S/cm2)
    zInf
}

STATE {
    z
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    gSK_E2 = gSK_E2bar*z
    ik = gSK_E2*(v - ek)
    :CORENEURON CONDUCTANCE gSK_E2 USEION k
}

DERIVATIVE states {
    rates(cai)
    z' = (zInf - z)/zTau
}

INITIAL {
    rates(cai)
    z = zInf
}

PROCEDURE rates(ca (mM)) {
    LOCAL c
    UNITSOFF
    : the floor keeps the power finite when a compartment starts without calcium
    c = ca
    if (c < 1e-7) {
        c = 1e-7
    }
    zInf = 1/(1 + (0.00043/c)^4.8)
    UNITSON
}
