"""The HTTP Usage Export API: a thin front door to the export pipeline (docs/api.md).

``POST /export/{type}`` authenticates an API key, validates the body, publishes an
export request and answers with its completion; ``usage-export api`` runs it.
"""
