"""The usage-export services (ingest, exporter) and the ``usage-export`` command line."""
