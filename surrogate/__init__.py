"""The PyTorch side: surrogate models of the simulated cell, trained on NeuronIO stores into run directories.

Imports go one way: :mod:`conventions` and :mod:`biophys.dataset` (the store reader) below, nothing of
:mod:`analysis` (which reads the run directories written here); NEURON is never imported. What lives where:

- models: :mod:`surrogate.elm_config` (ELM / Branch-ELM hyper-parameters), :mod:`surrogate.elm` (pure step
  function, thin module), :mod:`surrogate.routing`
  (Branch-ELM routing, paired by synapse layout), :mod:`surrogate.elm_fused` + ``csrc/elm_kernels.cpp`` (the fast
  recurrence), :mod:`surrogate.tcn`, :mod:`surrogate.lstm`; :mod:`surrogate.models` (the registry, ``num_params``);
  :mod:`surrogate.published` (the public ELM release's arguments and conformance weights);
- data: :mod:`surrogate.data` (windows and targets from a store, seeded), :mod:`surrogate.predict` (whole-simulation
  inference, channels mapped by synapse layout);
- training: :mod:`surrogate.config` (TrainConfig), :mod:`surrogate.plan` (a config checked against its stores),
  :mod:`surrogate.objective` (loss and validation scores), :mod:`surrogate.resources` (memory),
  :mod:`surrogate.ddp` (torchrun), :mod:`surrogate.train` (the loop);
- run directories: :mod:`surrogate.run` (files, ``model.pt``, ``load_run``), :mod:`surrogate.checkpoint`
  (``checkpoint.pt``, resume checks, Ctrl-C);
- :mod:`surrogate.cli`: every subcommand's argument parsing (``python -m surrogate``).
"""
