COMMENT
Submembrane calcium shell (Hay et al. 2011).
cai' = -10000 * ica * gamma / (2 F depth) - (cai - minCai)/decay
The factor 10000 turns (mA/cm2) / ((C/mol) um) into mM/ms. gamma is the free (unbuffered) fraction of the
calcium influx. eca follows from the Nernst equation, which NEURON applies because this mechanism writes cai
(cao is the ion default, 2 mM). cai starts from the ion's cai0_ca_ion, as in the reference model.
Units: ica mA/cm2; cai, minCai mM; decay ms; depth um; gamma dimensionless.
ENDCOMMENT

NEURON {
    SUFFIX CaDynamics_E2
    USEION ca READ ica WRITE cai
    RANGE decay, gamma, depth, minCai
    THREADSAFE
}

UNITS {
    (mA) = (milliamp)
    (mM) = (milli/liter)
    (um) = (micron)
    FARADAY = (faraday) (coulombs)
}

PARAMETER {
    gamma = 0.05
    decay = 80 (ms)
    depth = 0.1 (um)
    minCai = 1e-4 (mM)
}

ASSIGNED {
    ica (mA/cm2)
}

STATE {
    cai (mM)
}

BREAKPOINT {
    SOLVE states METHOD cnexp
}

DERIVATIVE states {
    UNITSOFF
    cai' = -10000*ica*gamma/(2*FARADAY*depth) - (cai - minCai)/decay
    UNITSON
}
