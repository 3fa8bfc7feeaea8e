"""The exporter service: export requests in, CSV files and completion events out.

Modules: ``upload`` (streaming multipart upload), ``export_job`` (one request → one
outcome: the window's facts read from the workspace's tables and its type's query, with
retries and a deadline), ``offsets`` (what may be committed), ``worker`` (the consumer
loop) and ``app`` (wiring). What the HTTP API shares with it lives in ``shared/``:
request validation (``shared.domain.export.request_validation``), outcomes
(``shared.domain.export.outcomes``), the request ledger
(``shared.adapters.request_ledger``), outcomes → completion events
(``shared.adapters.signed_completions``); the client that publishes a request and awaits
its completion (for the command line, the demo and tests) is
``shared.adapters.export_client``.
"""
