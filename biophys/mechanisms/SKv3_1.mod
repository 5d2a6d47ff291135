COMMENT
Kv3.1 fast delayed-rectifier potassium current (Hay et al. 2011).
g = gSKv3_1bar * m. No temperature factor: the kinetics are as published.
Units: v, ek mV; gSKv3_1bar, gSKv3_1 S/cm2; ik mA/cm2; mTau ms.
ENDCOMMENT

NEURON {
    SUFFIX SKv3_1
    USEION k READ ek WRITE ik
    RANGE gSKv3_1bar, gSKv3_1, ik, mInf, mTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gSKv3_1bar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gSKv3_1 (S/cm2)
    mInf
    mTau (ms)
}

STATE {
    m
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    gSKv3_1 = gSKv3_1bar*m
    ik = gSKv3_1*(v - ek)
    :CORENEURON CONDUCTANCE gSKv3_1 USEION k
}

DERIVATIVE states {
    rates(v)
    m' = (mInf - m)/mTau
}

INITIAL {
    rates(v)
    m = mInf
}

PROCEDURE rates(vm (mV)) {
    UNITSOFF
    mInf = 1/(1 + exp((vm - 18.7)/-9.7))
    mTau = 4/(1 + exp((vm + 46.56)/-44.14))
    UNITSON
}
