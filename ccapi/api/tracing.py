"""A server span per HTTP request, continuing the client's W3C ``traceparent``; registered only
when tracing is on. The span is current while the handler runs, so a turn it starts is its child."""

from __future__ import annotations

from sanic import HTTPResponse, Request


async def trace_request(request: Request) -> None:
    route = "/" + request.route.path if request.route is not None else "unmatched"
    span = request.app.ctx.tracing.request(request.headers, request.method, route, request.path)
    scope = span.current()
    scope.__enter__()
    request.ctx.trace = (span, scope)


async def end_request_trace(request: Request, response: HTTPResponse) -> None:
    trace = getattr(request.ctx, "trace", None)
    if trace is None:
        return
    del request.ctx.trace
    span, scope = trace
    span.set(
        {"http.response.status_code": response.status, "cc_api.request_id": getattr(request.ctx, "request_id", None)}
    )
    scope.__exit__(None, None, None)
    span.end(f"HTTP {response.status}" if response.status >= 500 else None)
