COMMENT
Persistent (slowly inactivating) potassium current of the axon (Hay et al. 2011).
g = gK_Pstbar * m^2 * h. The kinetics are written in u = v + 10 mV (the published fit's 10 mV shift).
Rates are fixed to a 34 degC reference by qt = 2.3^((34 - 21)/10), independent of celsius.
Units: v, ek mV; gK_Pstbar, gK_Pst S/cm2; ik mA/cm2; mTau, hTau ms.
ENDCOMMENT

NEURON {
    SUFFIX K_Pst
    USEION k READ ek WRITE ik
    RANGE gK_Pstbar, gK_Pst, ik, mInf, mTau, hInf, hTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gK_Pstbar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gK_Pst (S/cm2)
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
    gK_Pst = gK_Pstbar*m*m*h
    ik = gK_Pst*(v - ek)
    :CORENEURON CONDUCTANCE gK_Pst USEION k
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
    mInf = 1/(1 + exp(-(u + 1)/12))
    if (u < -50) {
        mTau = (1.25 + 175.03*exp(0.026*u))/qt
    } else {
        mTau = (1.25 + 13*exp(-0.026*u))/qt
    }
    hInf = 1/(1 + exp((u + 54)/11))
    hTau = (360 + (1010 + 24*(u + 55))*exp(-((u + 75)/48)^2))/qt
    UNITSON
}
