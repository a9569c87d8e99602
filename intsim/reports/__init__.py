"""Report generators behind ``intsim report NAME``.

Each report module provides ``add_arguments(parser)`` and ``run(args) -> int`` and
writes its files atomically under ``reports/NAME/`` (or ``--out``).
"""

REPORTS: dict[str, str] = {
    "unpack": "intsim.reports.unpack",
    "nonlinear": "intsim.reports.nonlinear",
    "cost": "intsim.reports.cost",
}
