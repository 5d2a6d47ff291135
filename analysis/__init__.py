"""Evaluation and reports of trained surrogates, the last package of the data flow.

``analysis`` reads what the others write: stores through :mod:`biophys.dataset`, run directories through
:mod:`surrogate.run`, predictions through :mod:`surrogate.predict`; the shared rules (time bins, spike-bin rule,
soma clip, burn-in, spike matching, scores) come from :mod:`conventions`. Neither ``biophys`` nor ``surrogate``
imports it.

- ``metrics``   ROC, TPR at fixed FPR, spike timing (coincidence factor), soma errors: pure NumPy functions
- ``cost``      multiply-adds per simulated ms, batched inference speed, a store's simulation CPU time
- ``evaluate``  one run scored on one store (compatibility checks, burn-in, threshold choice)
- ``learned``   an ELM's τ_m and effective synaptic weights, joined to the store's synapses
- ``plots``     the figures, one PNG each
- ``report``    several runs: report.md, metrics.json and figures, written whole and renamed into place;
                ``report_tables`` its Markdown tables and the notes on runs that have not learned
- ``ablation``  sweeps that train each variant with several seeds and tabulate their scores; the notebooks'
                variants and published figures (``ablation_variants``), the toy cells of quick mode
                (``ablation_toy``), figures (``ablation_plots``) and write-ups with their verdicts
                (``ablation_writeup``)
- ``curves``    the learning curve: test scores against hours of training data, one line per model
- ``study``     the quality study at scale (``scripts/quality_study.py``): data, nested subsets, training,
                scoring; ``study_runs`` its runs (budgets, probes, skip and resume), ``study_report`` its costs
- ``__main__``  ``python -m analysis evaluate|report|learning-curve``
"""
