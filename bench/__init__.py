"""Benchmarks of usage-export on the embedded stack: ``python -m bench ingest|export|replay|all``.

Each benchmark starts its own embedded broker and object store in a temporary
directory, runs the real services as subprocesses (so memory figures are theirs alone),
prints a table and merges its section into ``bench/results.json``. ``BENCHMARKS.md``
explains what each figure measures and how to reproduce it.

Modules: ``stats`` (median/min/max, percentiles), ``targets`` (the issue's pass/fail
thresholds), ``results`` (the results file), ``machine`` (what it ran on), ``procs``
(subprocesses and their peak RSS), ``kafka_io`` (fast produce, committed offsets),
``stack`` (a fresh embedded stack and per-run isolated names), ``ingest_bench``,
``export_bench``, ``replay_bench``, ``report`` (rich tables); ``peers/`` holds the
comparison consumers (bare aiokafka fold, faust-streaming, Quix Streams).
"""
