"""Columnar state (storage format 3): facts and dimension versions as Arrow tables,
stored as Parquet in per-workspace Delta Lake tables (``docs/storage.md``)."""
