"""Contracts and pure domain shared by the usage-export services.

Nothing under ``shared.contracts`` or ``shared.domain`` imports a network client:
they are tested without a broker.  Network adapters live in ``shared.adapters``
and the embedded broker/object-store launcher in ``shared.embedded``.
"""
