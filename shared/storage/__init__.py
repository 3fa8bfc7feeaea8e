"""The durable layout both services share: day heads and fact segments, dimension
histories. Ingest writes it; the exporter only reads it."""
