"""The rules that biophys, surrogate and analysis share, kept in one place at the bottom of the import graph.

This package imports none of the toolkit's other packages; all three import it. What lives where:

- :mod:`conventions.signals`: the 1 ms dataset bin and the rule placing a spike at t in bin int(t − 0.5), the
  8 kHz somatic grid, the −55 mV soma clip and the soma target's scaling, the 150 ms burn-in;
- :mod:`conventions.spikes`: one-to-one spike matching within a window (physiology checks and spike-timing
  metrics use the same function);
- :mod:`conventions.scores`: the spike AUC and clipped-voltage RMSE that training's validation and the
  analysis both report;
- :mod:`conventions.cache`: the cache directory (compiled mechanisms, morphologies, compiled kernels);
- :mod:`conventions.atomic`: write-then-rename for every file the toolkit writes;
- :mod:`conventions.provenance`: code, library and machine records attached to stores and runs;
- :mod:`conventions.configkeys`: the check that a config dict holds only known keys of the right types;
- :mod:`conventions.machine`: the memory this process may use (physical RAM or a lower cgroup limit).
"""
