COMMENT
Transient sodium current of the soma and apical dendrites (Hay et al. 2011).
g = gNaTs2_tbar * m^3 * h. Rates are fixed to a 34 degC reference by qt = 2.3^((34 - 21)/10),
independent of celsius. Where a rate is 0/0 the voltage is shifted by 1e-4 mV.
Units: v, ena mV; gNaTs2_tbar, gNaTs2_t S/cm2; ina mA/cm2; mTau, hTau ms.
ENDCOMMENT

NEURON {
    SUFFIX NaTs2_t
    USEION na READ ena WRITE ina
    RANGE gNaTs2_tbar, gNaTs2_t, ina, mInf, mTau, hInf, hTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gNaTs2_tbar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ena (mV)
    ina (mA/cm2)
    gNaTs2_t (S/cm2)
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
    gNaTs2_t = gNaTs2_tbar*m*m*m*h
    ina = gNaTs2_t*(v - ena)
    :CORENEURON CONDUCTANCE gNaTs2_t USEION na
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

FUNCTION unsingular(vm, vsing) {
    if (vm == vsing) {
        unsingular = vm + 1e-4
    } else {
        unsingular = vm
    }
}

PROCEDURE rates(vm (mV)) {
    LOCAL qt, u, alpha, beta
    UNITSOFF
    qt = 2.3^((34 - 21)/10)

    u = unsingular(vm, -32)
    alpha = 0.182*(u + 32)/(1 - exp(-(u + 32)/6))
    beta = 0.124*(-u - 32)/(1 - exp((u + 32)/6))
    mInf = alpha/(alpha + beta)
    mTau = 1/((alpha + beta)*qt)

    u = unsingular(vm, -60)
    alpha = -0.015*(u + 60)/(1 - exp((u + 60)/6))
    beta = -0.015*(-u - 60)/(1 - exp((-u - 60)/6))
    hInf = alpha/(alpha + beta)
    hTau = 1/((alpha + beta)*qt)
    UNITSON
}
