"""Issue 17, item 10: the OpenAPI description says what the server does. Schemathesis
sends requests generated from ``/openapi.json`` (valid ones, and some that break the
schema) to a real server and checks every answer against the description: status codes,
bodies, content types, and that valid input is accepted and invalid input refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from tests.store.support import TOKEN, ServerProcess

MAX_EXAMPLES = 12  # per operation and generation mode: about 300 requests in all


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("openapi")
    process = ServerProcess(root / "db", log_dir=root, max_body_bytes=200_000)
    try:
        yield process.start()
    finally:
        process.kill()


@pytest.fixture(scope="module")
def api_schema(api_server: ServerProcess) -> schemathesis.BaseSchema:
    # A negative case can be an oversized body (a batch past maxItems): the server
    # refuses it with 413 before reading it, as its description says; schemathesis'
    # default list of "rejecting" statuses lacks 413.
    from schemathesis.config import SchemathesisConfig
    from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES

    rejecting = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": rejecting}}}
    )
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json", config=config)


def _operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_server_does_what_its_openapi_description_says(api_schema, mode):
    # Driven from Hypothesis directly: schemathesis' pytest plugin does not run under
    # this project's pytest (--import-mode=importlib).
    generation = schemathesis.GenerationMode(mode)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations = _operations(api_schema)
    assert len(operations) == 12
    tried: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, timeout=30)

        try:
            check()
        except Unsatisfiable:
            # Only an operation with no input (GET /health, GET /runs) has nothing to
            # break: every other one must run in both modes.
            assert mode == "negative" and operation.path in ("/health", "/runs"), operation
            continue
        tried.append(operation.label)
    assert len(tried) >= 10, tried


def test_the_description_names_the_errors_each_route_can_answer(api_server, api_schema):
    raw = api_schema.raw_schema
    for path, methods in raw["paths"].items():
        for method, operation in methods.items():
            codes = set(operation["responses"])
            if path != "/health":
                assert {"401", "422"} <= codes, (method, path, codes)
            if method in ("post", "put"):
                assert {"403", "413", "422"} <= codes, (method, path, codes)
            if ("{run_id}" in path and method != "get") or path == "/runs/{run_id}":
                assert "404" in codes, (method, path, codes)
