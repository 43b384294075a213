"""Stage 2 of a point (sub-wing ``engine.passes``): one evaluation pass of the model over the evaluation set.

:mod:`.batches` (how the set is kept and placed), :mod:`.batchsize` (``auto``, halving on out-of-memory),
:mod:`.outputs` (the measured output: ``--output-key``, ``--pool``), :mod:`.metrics` (the metric registry and
its families), :mod:`.task` (default metrics by task, checked), :mod:`.evaluate` (one pass over the set),
:mod:`.precision` and :mod:`.fastpath` (how a pass runs: precision, channels-last, compile),
:mod:`.activations` (clean activations reused on chains of modules), :mod:`.chance` (the warning for a clean
model at chance level).
Imports: the wings below ``engine`` and ``engine.defaults`` only; never :mod:`..weights` or :mod:`..runs`.
"""
