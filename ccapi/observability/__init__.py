"""Watching the gateway: structlog JSON lines to its log file (``logs``), Prometheus metrics (``metrics``, always
on) and OpenTelemetry traces (``tracing``, only with the ``otel`` extra and an exporter configured).

All are leaves: the layers that record import them, never the other way round.
"""
