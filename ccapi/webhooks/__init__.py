"""Signed, durable webhooks: the signature scheme, which targets a session may name, and
the worker that delivers the outbox the store fills in the same transaction as the events."""
