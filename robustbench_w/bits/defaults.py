"""Defaults of effective-bits counting that the command line offers (kept apart from the counting itself,
which needs torch, so that ``wrobust bits --help`` starts without it)."""

DEFAULT_RESOLUTION = 8  # bits of the grid a continuous tensor is counted on
DEFAULT_MAX_DISTINCT = 256  # at most this many distinct values per scale group (that repeat): exact
MAX_RESOLUTION = 24  # the finest grid --resolution may ask for
