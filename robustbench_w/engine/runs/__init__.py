"""Stage 3 (sub-wing ``engine.runs``): the grid of points around the passes, and everything a long run needs.

:mod:`.sweep` (the grid: distortions x strengths x trials), :mod:`.meta` (a run's meta), :mod:`.points`
(a point's key), :mod:`.trials`
(``--trials auto``), :mod:`.stats` (intervals and summary rows), :mod:`.runlog` (the run log),
:mod:`.resume` (resume, shards and ranks around a sweep's points), :mod:`.shards` (``--shard I/N``),
:mod:`.signals` (Ctrl-C, SIGTERM), :mod:`.distributed` (torchrun).
Imports: :mod:`..weights`, :mod:`..passes` and the wings below ``engine``.
"""
