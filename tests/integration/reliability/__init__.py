"""The reliability and security fault suite (issue 6): see RELIABILITY.md.

Short versions of every scenario run with the rest of the tests; the full versions are
marked ``soak`` and run with ``python -m tests.integration.reliability``.
"""
