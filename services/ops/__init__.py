"""Operator tooling behind the ``usage-export`` command line.

Modules: ``dead_letters`` (what a dead letter is, how letters are grouped, chosen and
turned back into the records they were, no I/O), ``topic_reader`` (a whole topic from its
beginning to its end, despite the embedded broker's unreliable ListOffsets),
``dlq_actions`` (``dlq show`` / ``dlq replay`` against the broker) and ``contract_docs``
(JSON Schemas and the AsyncAPI document generated from the pydantic contracts).
"""
