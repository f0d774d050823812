"""Schema fuzzing: schemathesis generates requests from the app's own OpenAPI document and
holds every response to it — no 5xx, no undocumented status, no body that breaks the schema."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from ccapi.testing import MockModel
from tests.gateway import Gateway

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
KEY = "fuzz-key"


@pytest.fixture(scope="module")
def fuzz_gateway(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("fuzz"), mock_model.url, CC_API_KEY=KEY, CC_API_KEEPALIVE_SECONDS="1").start()
    yield gw
    gw.stop()
    assert gw.lingering_processes() == []


@pytest.fixture(scope="module")
def api_schema(fuzz_gateway: Gateway):  # schemathesis' own schema type
    document = fuzz_gateway.client.get("/docs/openapi.json", headers={"x-api-key": KEY})
    assert document.status_code == 200
    return schemathesis.openapi.from_dict(document.json())


@pytest.mark.timeout(420)  # ~1,000 generated requests, CPU-bound: 61 s in a quiet CI run, ~150 s under full load
def test_every_route_honours_its_documented_contract(api_schema, fuzz_gateway: Gateway) -> None:
    """Each documented operation gets a bounded number of generated requests.

    (Driven by hand rather than schemathesis' pytest plugin, which does not load on pytest 9.)
    """
    headers = {"x-api-key": KEY}
    real = fuzz_gateway.client.post("/api/sessions", json={}, headers=headers).json()["id"]
    assert (
        fuzz_gateway.client.post(f"/api/sessions/{real}/turns", json={"input": "seed"}, headers=headers).status_code
        == 200
    )
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14
    calls = itertools.count()
    for operation in operations:
        # an SSE stream never ends by itself: each example reads it for seconds, so fewer
        examples = 6 if operation.path.endswith("/stream") else 25

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            # every other request targets a real session, so routes are fuzzed past their 404
            if "session_id" in (case.path_parameters or {}) and case.method != "DELETE" and next(calls) % 2:
                case.path_parameters["session_id"] = real
            case.call_and_validate(base_url=fuzz_gateway.base_url, headers=headers, checks=CHECKS)

        fuzz()
