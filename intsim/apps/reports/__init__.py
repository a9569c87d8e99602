"""Report generators behind ``intsim report NAME``.

Each report module provides ``add_arguments(parser)`` and ``run(args) -> int`` and
writes its files atomically under ``reports/NAME/`` (or ``--out``).
"""

REPORTS: dict[str, str] = {
    "unpack": "intsim.apps.reports.unpack",
    "nonlinear": "intsim.apps.reports.nonlinear",
    "cost": "intsim.apps.reports.cost",
    "training": "intsim.apps.reports.training",
    "onnx": "intsim.apps.reports.onnx",
}
