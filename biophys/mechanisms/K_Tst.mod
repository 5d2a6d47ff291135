COMMENT
Transient (fast inactivating) potassium current of the axon (Hay et al. 2011).
g = gK_Tstbar * m^4 * h. The kinetics are written in u = v + 10 mV (the published fit's 10 mV shift).
Rates are fixed to a 34 degC reference by qt = 2.3^((34 - 21)/10), independent of celsius.
Units: v, ek mV; gK_Tstbar, gK_Tst S/cm2; ik mA/cm2; mTau, hTau ms.
ENDCOMMENT

NEURON {
    SUFFIX K_Tst
    USEION k READ ek WRITE ik
    RANGE gK_Tstbar, gK_Tst, ik, mInf, mTau, hInf, hTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gK_Tstbar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gK_Tst (S/cm2)
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
    gK_Tst = gK_Tstbar*m*m*m*m*h
    ik = gK_Tst*(v - ek)
    :CORENEURON CONDUCTANCE gK_Tst USEION k
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
    LOCAL qt, u
    UNITSOFF
    qt = 2.3^((34 - 21)/10)
    u = vm + 10
    mInf = 1/(1 + exp(-u/19))
    mTau = (0.34 + 0.92*exp(-((u + 71)/59)^2))/qt
    hInf = 1/(1 + exp((u + 66)/10))
    hTau = (8 + 49*exp(-((u + 73)/23)^2))/qt
    UNITSON
}
