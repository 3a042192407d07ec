"""tokenhub's benchmarks: each figure beside a baseline measured in the same run, with a target.

Run them with ``make bench`` or ``tokenhub bench`` (``--only NAME``, ``--quick``); the
harness is :mod:`bench.run`, one module per benchmark, shared helpers in
:mod:`bench.common`. Method and targets: ``bench/README.md``. Benchmarks are never timed
tests: ``make test`` does not run them.
"""

#: The benchmarks in the order they run (cheap and independent first), one module each.
BENCHMARKS: tuple[str, ...] = ("producer", "worker", "latency", "landing", "marts", "memory")
