"""The sweep engine (wing ``engine``): which tensors, seeds, perturbing in place, one evaluation pass, the grid.

In: a loaded model and an evaluation set (from :mod:`..load`), distortions (from :mod:`..distortions`).
Out: tidy result rows (one per distortion x strength x trial) and their summary with confidence intervals.
Files: :mod:`.targets` (which parameters), :mod:`.seeding` (one generator per point and tensor),
:mod:`.perturb` (write distorted values in place, restore), :mod:`.batches` (how the set is kept and placed),
:mod:`.outputs` (the measured output: ``--output-key``, ``--pool``), :mod:`.metrics` (the metric registry and
its families), :mod:`.task` (default metrics by task, checked), :mod:`.evaluate` (one pass over the set),
:mod:`.sweep` (the grid of points), :mod:`.stats` (intervals and summary rows), :mod:`.health` (non-finite
weights and outputs), :mod:`.chance` (the warning for a clean model at chance level); for long runs
:mod:`.points` (a point's key), :mod:`.runlog` (the run log), :mod:`.shards` (``--shard I/N``),
:mod:`.signals` (Ctrl-C, SIGTERM), :mod:`.distributed` (torchrun) and :mod:`.resume` (all of them around a
sweep's points); for per-layer sweeps :mod:`.layers` (units, ``--groups``, their points) and
:mod:`.activations` (clean activations reused on chains of modules).
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "targets": ("select_targets", "default_targets"),
    "seeding": ("derive_seed", "point_seed", "seed_spec", "point_generator"),
    "perturb": ("WeightPatch",),
    "layers": ("Unit", "LayerPlan", "LayerRunner", "parse_groups", "plan_units", "per_layer_points"),
    "activations": ("ACTIVATION_BUDGET", "ChainCache", "chain_of"),
    "evaluate": ("Evaluator", "PassResult"),
    "metrics": ("METRICS", "Metric", "MetricInfo", "get_metric", "list_metrics", "register_metric", "custom_metric"),
    "outputs": ("OutputPlan", "View"),
    "task": ("Task", "plan_task"),
    "sweep": ("sweep", "SweepRunner", "Point", "plan", "parse_distortions", "ROW_COLUMNS", "DEFAULT_DISTORTIONS"),
    "stats": ("summarize", "t_interval"),
    "chance": ("chance_warning", "clean_warnings"),
    "points": ("point_key", "row_key", "key_of"),
    "runlog": ("RunLog", "read_log", "consolidate"),
    "shards": ("Shard", "parse_shard", "partition", "take_shard"),
    "signals": ("Interrupted",),
    "distributed": ("World", "current_world"),
    "resume": ("RunSetup", "run_setup", "run_resumable", "Outcome"),
})
