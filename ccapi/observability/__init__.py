"""Watching the gateway: Prometheus metrics (``metrics``, always on) and OpenTelemetry traces
(``tracing``, only with the ``otel`` extra and an exporter configured).

Both are leaves: the layers that record import them, never the other way round.
"""
