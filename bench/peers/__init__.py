"""Comparison consumers for the ingest benchmark: benchmark code only.

Each computes the same per-(workspace, UTC day, user, model) message counters and token
sums from ``usage.events`` — none validates or deduplicates, which only flatters them —
and is run as its own process by :mod:`bench.ingest_bench`, configured through the
``BENCH_*`` variables of :mod:`bench.peers.common`:

* ``bare_fold``: an aiokafka ``getmany`` loop that decodes with orjson and adds to a
  dict, committing after each batch — the ceiling for a Python consumer;
* ``faust_app``: an idiomatic faust-streaming agent updating a Table per event;
* ``quix_app``: an idiomatic Quix Streams pipeline, a 1-day tumbling window aggregation
  with RocksDB state.
"""
