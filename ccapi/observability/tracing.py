"""OpenTelemetry traces, when the ``otel`` extra is installed and an exporter is configured.

``from_environment`` reads only the standard ``OTEL_*`` variables: tracing is on when
``OTEL_TRACES_EXPORTER`` names an exporter (or an OTLP endpoint is set), ``OTEL_SDK_DISABLED`` is
not ``true``, and an installed package provides one of the named exporters. Otherwise it returns
``None``, nothing of OpenTelemetry's SDK is imported, and every layer skips its one
``if tracing is not None`` — so a gateway without the extra behaves and performs exactly as before.

The layers see only the small protocols below; ``ccapi.observability.otel`` implements them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class Span(Protocol):
    def set(self, attributes: Mapping[str, Any]) -> None:
        """Add attributes (``None`` values are left out)."""

    def current(self) -> AbstractContextManager[None]:
        """While the block runs, this span is the parent of new spans — including those of a task
        created in the block, and of a Claude Code process started in it (``TRACEPARENT``)."""

    def end(self, error: str | None = None) -> None:
        """Finish the span, marked failed when ``error`` says why."""


class Tracing(Protocol):
    def request(self, headers: Mapping[str, str], method: str, route: str, path: str) -> Span:
        """A server span for one HTTP request, continuing the client's ``traceparent``."""

    def span(self, name: str, attributes: Mapping[str, Any]) -> Span:
        """A span under whatever span is current."""

    def shutdown(self) -> None:
        """Export what is still buffered."""


def from_environment(env: Mapping[str, str]) -> Tracing | None:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = [name.strip() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    exporters = [name for name in named if name != "none"]  # ``none`` means no exporter, not one named so
    if not exporters and (named or not any(env.get(name) for name in _ENDPOINTS)):
        return None
    if not _installed("opentelemetry.sdk"):
        log.warning(
            "tracing_unavailable",
            message="OTEL_* asks for traces, but the otel extra is not installed: pip install 'cc-api[otel]'",
        )
        return None
    from ccapi.observability.otel import OtelTracing

    return OtelTracing.from_environment(env, exporters or ["otlp"])


def _installed(module: str) -> bool:
    """Whether ``module`` could be imported, without importing it (its parent package is, if present)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing too
        return False
