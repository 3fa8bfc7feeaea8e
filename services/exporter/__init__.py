"""The exporter service: export requests in, CSV files and completion events out.

Modules: ``request_validation`` (bytes → a validated request or a 400), ``upload``
(streaming multipart upload), ``idempotency`` (per-request records), ``export_job`` (one
request → one outcome: the window's facts read from the workspace's tables and its
type's query, with retries and a deadline), ``completions`` (outcomes → completion
events), ``offsets`` (what may be committed), ``worker`` (the consumer loop), ``app``
(wiring) and ``client`` (publish a request, await its completion: for the command line,
the demo and tests).
"""
