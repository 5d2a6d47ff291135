COMMENT
Hyperpolarisation-activated cation current (Hay et al. 2011), a nonspecific current reversing at ehcn.
g = gIhbar * m. vshift moves the activation curve along the voltage axis. No temperature factor.
Where a rate is 0/0 the voltage is shifted by 1e-4 mV.
Units: v, ehcn, vshift mV; gIhbar, gIh S/cm2; ihcn mA/cm2; mTau ms.
ENDCOMMENT

NEURON {
    SUFFIX Ih
    NONSPECIFIC_CURRENT ihcn
    RANGE gIhbar, gIh, ihcn, ehcn, vshift, mInf, mTau
    THREADSAFE
}

UNITS {
    (S) = (siemens)
    (mV) = (millivolt)
    (mA) = (milliamp)
}

PARAMETER {
    gIhbar = 0.00001 (S/cm2)
    ehcn = -45 (mV)
    vshift = 0 (mV)
}

ASSIGNED {
    v (mV)
    ihcn (mA/cm2)
    gIh (S/cm2)
    mInf
    mTau (ms)
}

STATE {
    m
}

BREAKPOINT {
    SOLVE states METHOD cnexp
    gIh = gIhbar*m
    ihcn = gIh*(v - ehcn)
    :CORENEURON CONDUCTANCE gIh
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
    LOCAL vh, u, alpha, beta
    UNITSOFF
    vh = -154.9 + vshift
    u = vm
    if (u == vh) {
        u = u + 1e-4
    }
    alpha = 0.00643*(u - vh)/(exp((u - vh)/11.9) - 1)
    beta = 0.193*exp((vm - vshift)/33.1)
    mInf = alpha/(alpha + beta)
    mTau = 1/(alpha + beta)
    UNITSON
}
