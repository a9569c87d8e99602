"""``intsim sweep``: a grid over a report's parameters, run as Dask tasks, results in Parquet.

``intsim sweep SPEC.toml --out DIR`` expands the grid of a TOML spec into points, computes every
point as a task of `Dask <https://docs.dask.org/>`_ (``dask.distributed``) and writes
``DIR/results.parquet``: one row per grid point, in grid order, with the point's parameters, its
figures and the intsim version. By default the tasks run on a ``LocalCluster`` of worker processes
on this machine (``--workers N``, default one per CPU); ``--scheduler tcp://HOST:PORT`` (or a
scheduler file written by ``dask scheduler --scheduler-file``) uses an existing Dask cluster
started with ``dask scheduler`` and ``dask worker``. The workers must import the same intsim
version and read the files the spec names (the same machine or a shared file system).

A spec::

    [sweep]
    kind = "unpack"            # unpack, cost, golden or training (see "Kinds" below)
    name = "MiniLM layer 0"    # optional, the title of DIR/README.md
    retries = 1                # optional: Dask retries of a failed point (default 1)

    [grid]                     # a list is an axis, a scalar is the same for every point
    gemm = ["0.q_proj", "0.scores"]
    bits = [2, 4, 8]
    strategy = ["row", "plan"]
    percentile = [0.95, 0.99]

The points are the Cartesian product of the axes, the first axis varying slowest, in the order the
spec lists them. An unknown kind or parameter, a value out of range, an empty axis, malformed
TOML or a missing file is an error (exit status 2) naming the spec and the key.

Kinds (:data:`KINDS`; a kind is a :class:`SweepKind` registered with :func:`register_kind`):

``unpack``
    IM-Unpack (Zeng, Sankaralingam, Singh, ICML 2024) unpack ratios, as ``intsim report unpack``
    computes them: parameters ``gemm`` (``"L.name"`` of the MiniLM GEMMs, or ``"all"``), ``bits``,
    ``strategy``, ``percentile``, ``levels``, ``admit_min``, ``sentences``, ``max_len``. A spec
    may name GEMMs of its own instead, ``[[gemm]]`` tables with ``name``, ``a`` and ``b`` (``.npy``
    files, relative to the spec): float operands are quantized as the MiniLM's, integer operands are
    unpacked as they are; or every integer GEMM of a quantized ONNX model, an ``[onnx]`` table with
    ``model`` (``.onnx``) and ``inputs`` (its feeds, ``.npz``): the model is run as ONNX Runtime
    runs it, one point per GEMM node (``gemm`` = the node's name), its zero-point-free integer
    operands unpacked as they are (``percentile``, ``levels``, ``sentences`` and ``max_len`` do not
    apply). For example::

        [sweep]
        kind = "unpack"
        [onnx]
        model = "model.quant.onnx"
        inputs = "feeds.npz"
        [grid]
        bits = [2, 3, 4, 8]
        strategy = ["row", "col", "both", "plan"]
``cost``
    energy, cycles and area (``intsim report cost``) of one method on one hardware profile per
    point: ``method``, ``profile``, ``workload``, ``scale_to``, ``voltage``, ``nonlinear``,
    ``sentences``, ``max_len``, ``seed``.
``golden``
    one golden suite (``spec`` = its TOML file) sharded over the workers, one case per point,
    assembled into ``DIR/suite``: byte-identical to ``intsim golden generate`` of the same spec.
``training``
    the GEMMs of one MiniLM training step, as ``intsim report training`` measures them, one GEMM
    kind per point: ``gemm`` (``forward``, ``input_grad``, ``weight_grad``, ``attention``,
    ``attention_grad``, ``inference`` = forward + attention, or ``all``). Unpack ratios for
    ``bits``, ``strategy``, ``percentile``, ``levels``; the INT16 shared-exponent datapath for
    ``acc_bits`` and ``spill`` (k products per ``acc_bits`` register before it is added into a
    64-bit one, 0 = a plain MAC chain): overflowing outputs and their fraction. The workload:
    ``pairs``, ``max_len``, ``layers``.

Resuming: every finished point is written at once, atomically, to ``DIR/parts/<key>.parquet``,
``key`` a hash of the kind, the point's parameters, the data it reads (file hashes) and the intsim
version. Running the same command again (after a crash, a kill or with a larger grid) computes only
the points without a part; ``--force`` discards the finished points and computes them all again.
Points are computed from their parameters alone (a seed is a parameter, never the worker, the time
or the order), so the rows are the same whatever the number of workers, their order or the machine.
Compute times go to ``DIR/timings.parquet``, never into ``results.parquet``.

``DIR`` also gets ``README.md`` (a Markdown summary, with plots when matplotlib is installed,
unless ``--no-plots``) and ``sweep.json``, the record of what intsim wrote there: a ``DIR``
holding anything else is refused. Progress goes to stderr, a bar with an estimate of the time left
(``-q``/``--quiet`` hides it).

>>> spec = parse_sweep_spec('''
... [sweep]
... kind = "unpack"
... [grid]
... gemm = "0.q_proj"
... bits = [2, 4]
... strategy = ["row", "plan"]
... ''')
>>> [(p["bits"], p["strategy"]) for p in spec.plan().points]
[(2, 'row'), (2, 'plan'), (4, 'row'), (4, 'plan')]
"""

from __future__ import annotations

from .command import add_arguments, run
from .cost import CostKind
from .golden import GoldenKind
from .kinds import KINDS, MAX_POINTS, Plan, PointResult, SweepKind, SweepSpec, point_seed, product_points, register_kind
from .params import Param
from .runner import SweepFailed, SweepReport, run_sweep
from .spec import load_sweep_spec, parse_sweep_spec
from .store import PARTS, RECORD, RESULTS, SUITE, SUMMARY, TIMINGS, point_key
from .training import TrainingKind
from .unpack import UnpackKind

__all__ = [
    "Param", "Plan", "PointResult", "SweepKind", "SweepSpec", "KINDS", "register_kind", "parse_sweep_spec",
    "load_sweep_spec", "run_sweep", "SweepReport", "SweepFailed", "add_arguments", "run", "point_key", "point_seed",
    "product_points", "MAX_POINTS", "UnpackKind", "CostKind", "GoldenKind", "TrainingKind",
    "RESULTS", "TIMINGS", "SUMMARY", "RECORD", "PARTS", "SUITE",
]

# the built-in kinds, in the order errors list them
for _kind in (UnpackKind(), CostKind(), GoldenKind(), TrainingKind()):
    register_kind(_kind)
del _kind
