"""The sweep engine (wing ``engine``): which tensors, seeds, perturbing in place, one evaluation pass, the grid.

In: a loaded model and an evaluation set (from :mod:`..load`), distortions (from :mod:`..distortions`).
Out: tidy result rows (one per distortion x strength x trial) and their summary with confidence intervals.
Sub-wings, one per stage of a point: :mod:`.weights` (which tensors, seeds, writing a distortion in place and
restoring it, weight health, per-layer units), :mod:`.passes` (one evaluation pass: batches, outputs, metrics,
task, precision, fast paths, reused activations, the chance-level warning) and :mod:`.runs` (the grid of
points: sweep, trials, stats, run log, resume, shards, signals, torchrun). They import one way:
``runs -> weights -> passes``. :mod:`.defaults` holds the light defaults that the command line reads without
importing torch.
"""

from ..registry import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "weights.targets": ("select_targets", "default_targets", "choose_targets", "Selection", "ROLES"),
    "weights.coverage": ("coverage", "coverage_text"),
    "weights.inventory": ("list_targets",),
    "weights.seeding": ("derive_seed", "point_seed", "seed_spec", "point_generator"),
    "weights.perturb": ("WeightPatch",),
    "weights.layers": ("Unit", "LayerPlan", "LayerRunner", "parse_groups", "plan_units", "per_layer_points"),
    "passes.activations": ("ACTIVATION_BUDGET", "ChainCache", "chain_of"),
    "passes.evaluate": ("Evaluator", "PassResult"),
    "passes.metrics": ("METRICS", "Metric", "MetricInfo", "get_metric", "list_metrics", "register_metric", "custom_metric"),
    "passes.outputs": ("OutputPlan", "View"),
    "passes.task": ("Task", "plan_task"),
    "runs.sweep": ("sweep", "SweepRunner", "Point", "plan", "parse_distortions", "ROW_COLUMNS", "DEFAULT_DISTORTIONS"),
    "runs.stats": ("summarize", "t_interval"),
    "passes.chance": ("chance_warning", "clean_warnings"),
    "runs.points": ("point_key", "row_key", "key_of"),
    "runs.runlog": ("RunLog", "read_log", "consolidate"),
    "runs.shards": ("Shard", "parse_shard", "partition", "take_shard"),
    "runs.signals": ("Interrupted",),
    "runs.distributed": ("World", "current_world"),
    "runs.resume": ("RunSetup", "run_setup", "run_resumable", "Outcome"),
})
