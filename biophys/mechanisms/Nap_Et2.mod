COMMENT
Persistent sodium current of the axon (Hay et al. 2011).
g = gNap_Et2bar * m^3 * h. m_inf and h_inf are Boltzmann curves; tau_m reuses NaTa_t's activation rates
(half-point -38 mV) scaled by 6. Rates are fixed to a 34 degC reference by qt = 2.3^((34 - 21)/10),
independent of celsius. Where a rate is 0/0 the voltage is shifted by 1e-4 mV.
Units: v, ena mV; gNap_Et2bar, gNap_Et2 S/cm2; ina mA/cm2; mTau, hTau ms.
ENDCOMMENT

NEURON {
    SUFFIX Nap_Et2
    USEION na READ ena WRITE ina
    RANGE gNap_Et2bar, gNap_Et2, ina, mInf, mTau, hInf, hTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gNap_Et2bar = 0.00001 (S/cm2)
}

ASSIGNED {
    v (mV)
    ena (mV)
    ina (mA/cm2)
    gNap_Et2 (S/cm2)
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
    gNap_Et2 = gNap_Et2bar*m*m*m*h
    ina = gNap_Et2*(v - ena)
    :CORENEURON CONDUCTANCE gNap_Et2 USEION na
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

    mInf = 1/(1 + exp((vm + 52.6)/-4.6))
    u = unsingular(vm, -38)
    alpha = 0.182*(u + 38)/(1 - exp(-(u + 38)/6))
    beta = 0.124*(-u - 38)/(1 - exp((u + 38)/6))
    mTau = 6/((alpha + beta)*qt)

    hInf = 1/(1 + exp((vm + 48.8)/10))
    u = unsingular(vm, -17)
    alpha = -2.88e-6*(u + 17)/(1 - exp((u + 17)/4.63))
    u = unsingular(vm, -64.4)
    beta = 6.94e-6*(u + 64.4)/(1 - exp(-(u + 64.4)/2.63))
    hTau = 1/((alpha + beta)*qt)
    UNITSON
}
