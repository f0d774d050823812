"""Signed, durable webhooks: the signature scheme, what a session may subscribe to, and the worker that delivers
the outbox the store fills in the same transaction as the events. The rules the settings check too (the secret's
format, the allowed targets) are ``ccapi.webhook_rules``, below ``ccapi.config``."""
