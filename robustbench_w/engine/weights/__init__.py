"""Stage 1 of a point (sub-wing ``engine.weights``): which tensors are distorted and how the values are written.

:mod:`.targets` (which parameters a sweep distorts: every weight that multiplies an input, each with its role),
:mod:`.coverage` (what was and was not distorted, as every report states it), :mod:`.inventory` (the table of
``wrobust targets``), :mod:`.seeding` (one generator per point and tensor),
:mod:`.perturb` (write a distortion in place from one pristine copy, restore), :mod:`.health` (non-finite
weights and outputs), :mod:`.layers` (per-layer units, ``--groups``, their points).
Imports: :mod:`..passes` and the wings below ``engine``; never :mod:`..runs`.
"""
