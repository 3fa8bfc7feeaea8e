"""Webhooks, pure: the signature, the addresses a callback may reach, the retry schedule,
the callback URL's shape. No network here: the delivery service and the request checks
(``services/delivery``, ``shared/adapters/callback_vetting.py``) bring the I/O."""
