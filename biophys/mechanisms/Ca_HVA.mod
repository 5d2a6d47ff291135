COMMENT
High-voltage-activated calcium current (Hay et al. 2011).
g = gCa_HVAbar * m^2 * h, i = g (v - eca). No temperature factor. Where a rate is 0/0 the voltage is
shifted by 1e-4 mV.
Units: v, eca mV; gCa_HVAbar, gCa_HVA S/cm2; ica mA/cm2; mTau, hTau ms.
ENDCOMMENT

NEURON {
    SUFFIX Ca_HVA
    USEION ca READ eca WRITE ica
    RANGE gCa_HVAbar, gCa_HVA, ica, mInf, mTau, hInf, hTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gCa_HVAbar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    eca (mV)
    ica (mA/cm2)
    gCa_HVA (S/cm2)
    mInf
    mTau (ms)
    hInf
    hTau (ms)
}

STATE {
    m
    h
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    gCa_HVA = gCa_HVAbar*m*m*h
    ica = gCa_HVA*(v - eca)
    :CORENEURON CONDUCTANCE gCa_HVA USEION ca
}

DERIVATIVE states {
    rates(v)
    m' = (mInf - m)/mTau
    h' = (hInf - h)/hTau
}

INITIAL {
    rates(v)
    m = mInf
    h = hInf
}

PROCEDURE rates(vm (mV)) {
    LOCAL u, alpha, beta
    UNITSOFF
    u = vm
    if (u == -27) {
        u = u + 1e-4
    }
    alpha = 0.055*(-27 - u)/(exp((-27 - u)/3.8) - 1)
    beta = 0.94*exp((-75 - vm)/17)
    mInf = alpha/(alpha + beta)
    mTau = 1/(alpha + beta)

    alpha = 0.000457*exp((-13 - vm)/50)
    beta = 0.0065/(exp((-vm - 15)/28) + 1)
    hInf = alpha/(alpha + beta)
    hTau = 1/(alpha + beta)
    UNITSON
}
