"""The OpenTelemetry implementation of ``ccapi.observability.tracing`` (the ``otel`` extra).

Used only when tracing is on. OpenTelemetry is imported inside the functions that use it, so the
module itself loads on a plain install (as every ``ccapi`` module does). Each app has a tracer
provider of its own (not the global one), so a test's in-memory exporter sees that app's spans only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import structlog

from ccapi import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

log = structlog.get_logger(__name__)


class OtelSpan:
    def __init__(self, span: Span) -> None:
        self._span = span

    def set(self, attributes: Mapping[str, Any]) -> None:
        self._span.set_attributes({key: value for key, value in attributes.items() if value is not None})

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        from opentelemetry import context, trace

        token = context.attach(trace.set_span_in_context(self._span))
        try:
            yield
        finally:
            context.detach(token)

    def end(self, error: str | None = None) -> None:
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()


class OtelTracing:
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("ccapi", __version__)

    @classmethod
    def from_environment(cls, env: Mapping[str, str], exporters: Sequence[str]) -> OtelTracing | None:
        """A provider with the ``OTEL_*`` resource, sampler and batch settings, and the named exporters; ``None``
        (tracing off, nothing of the SDK loaded) when none of them could be made: spans that nobody exports
        would only cost every request and turn."""
        made = [(name, exporter) for name in exporters if (exporter := _exporter(name, env)) is not None]
        if not made:
            log.warning(
                "tracing_off",
                exporters=list(exporters),
                message="none of the exporters OTEL_* names could be made: no traces are sent",
            )
            return None
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {SERVICE_VERSION: __version__}
        if not _names_the_service(env):  # theirs wins: ``Resource.create`` lets given attributes override them
            attributes[SERVICE_NAME] = "cc-api"
        provider = TracerProvider(resource=Resource.create(attributes))
        for _, exporter in made:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        log.info("tracing", exporters=[name for name, _ in made])
        return cls(provider)

    def request(self, headers: Mapping[str, str], method: str, route: str, path: str) -> OtelSpan:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        span = self._tracer.start_span(
            f"{method} {route}",
            propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route, "url.path": path},
        )
        return OtelSpan(span)

    def span(self, name: str, attributes: Mapping[str, Any]) -> OtelSpan:
        span = self._tracer.start_span(name, attributes={k: v for k, v in attributes.items() if v is not None})
        return OtelSpan(span)

    def shutdown(self) -> None:
        self._provider.shutdown()


#: The package that registers each of OpenTelemetry's own exporters, for the warning when it is missing.
_PACKAGES = {
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http (pip install 'cc-api[otel]')",
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
}


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    """``otlp`` (over HTTP, or gRPC when ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=grpc``), ``console``, or
    any exporter registered under that name by an installed package; ``None``, with a warning, when no
    installed package provides it or it cannot be made (a broken install, a bad ``OTEL_EXPORTER_*`` value):
    tracing never stops the gateway from starting."""
    if name == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        name = "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        needs = _PACKAGES.get(name, "a package that registers it")
        log.warning("tracing_exporter_missing", exporter=name, message=f"exporter {name!r} needs {needs}")
        return None
    try:
        exporter: SpanExporter = next(iter(found)).load()()
    except Exception as exc:  # noqa: BLE001 - whatever the exporter's package raised, said once, and tracing goes on
        log.warning("tracing_exporter_failed", exporter=name, message=f"{type(exc).__name__}: {exc}")
        return None
    return exporter


def _names_the_service(env: Mapping[str, str]) -> bool:
    """``OTEL_SERVICE_NAME``, or a ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, is set."""
    pairs = (item.partition("=") for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","))
    return bool(env.get("OTEL_SERVICE_NAME")) or any(
        key.strip() == "service.name" and value.strip() for key, _, value in pairs
    )
