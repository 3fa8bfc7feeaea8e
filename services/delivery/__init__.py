"""The delivery service: completions in, signed webhook POSTs out (``usage-export delivery``).

``intake`` turns each completion whose request has a callback URL into a durable pending
delivery; ``dispatcher`` tries the due ones (``sender``), reschedules failures with
backoff and dead-letters what stays undelivered; ``pending`` is their store; ``app``
wires it all.
"""
