COMMENT
Muscarinic (M-type) slow potassium current (Hay et al. 2011).
g = gImbar * m. Rates are fixed to a 34 degC reference by qt = 2.3^((34 - 21)/10), independent of celsius.
Units: v, ek mV; gImbar, gIm S/cm2; ik mA/cm2; mTau ms.
ENDCOMMENT

NEURON {
    SUFFIX Im
    USEION k READ ek WRITE ik
    RANGE gImbar, gIm, ik, mInf, mTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gImbar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    gIm (S/cm2)
    mInf
    mTau (ms)
}

STATE {
    m
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    gIm = gImbar*m
    ik = gIm*(v - ek)
    :CORENEURON CONDUCTANCE gIm USEION k
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
    LOCAL qt, alpha, beta
    UNITSOFF
    qt = 2.3^((34 - 21)/10)
    alpha = 3.3e-3*exp(0.1*(vm + 35))
    beta = 3.3e-3*exp(-0.1*(vm + 35))
    mInf = alpha/(alpha + beta)
    mTau = 1/((alpha + beta)*qt)
    UNITSON
}
