"""Where a verb's per-row work runs. ``local`` (the default) is this process, inline in each verb;
:mod:`rewardkit.engines.ray` runs the same work on a Ray cluster. The seam is "rows in, rows out":
a verb hands an engine its parsed input rows and a picklable factory of the worker that turns a list
of them into output rows (one per input row), and gets the output rows back in input order.
Nothing here imports Ray until a verb asks for ``--engine ray``."""
