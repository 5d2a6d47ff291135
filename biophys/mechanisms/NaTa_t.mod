COMMENT
Transient sodium current of the axon (Hay et al. 2011): NaTs2_t with half-points shifted 6 mV
hyperpolarised (m at -38 mV, h at -66 mV).
g = gNaTa_tbar * m^3 * h. Rates are fixed to a 34 degC reference by qt = 2.3^((34 - 21)/10),
independent of celsius. Where a rate is 0/0 the voltage is shifted by 1e-4 mV.
Units: v, ena mV; gNaTa_tbar, gNaTa_t S/cm2; ina mA/cm2; mTau, hTau ms.
ENDCOMMENT

NEURON {
    SUFFIX NaTa_t
    USEION na READ ena WRITE ina
    RANGE gNaTa_tbar, gNaTa_t, ina, mInf, mTau, hInf, hTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gNaTa_tbar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ena (mV)
    ina (mA/cm2)
    gNaTa_t (S/cm2)
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
    gNaTa_t = gNaTa_tbar*m*m*m*h
    ina = gNaTa_t*(v - ena)
    :CORENEURON CONDUCTANCE gNaTa_t USEION na
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

    u = unsingular(vm, -38)
    alpha = 0.182*(u + 38)/(1 - exp(-(u + 38)/6))
    beta = 0.124*(-u - 38)/(1 - exp((u + 38)/6))
    mInf = alpha/(alpha + beta)
    mTau = 1/((alpha + beta)*qt)

    u = unsingular(vm, -66)
    alpha = -0.015*(u + 66)/(1 - exp((u + 66)/6))
    beta = -0.015*(-u - 66)/(1 - exp((-u - 66)/6))
    hInf = alpha/(alpha + beta)
    hTau = 1/((alpha + beta)*qt)
    UNITSON
}
