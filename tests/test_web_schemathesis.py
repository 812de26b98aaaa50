"""Property-based testing of the HTTP API against its own OpenAPI document (schemathesis), on the real
server over loopback: generated requests, valid and invalid, to every operation; no answer may be a 5xx,
and every answer must be one the document declares, with a body matching its schema.

The MJPEG live view (an endless response) is left out; the zone and line edits run against the server's
own temporary copy of the config (they may really save what the generator sends).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("av")
schemathesis = pytest.importorskip("schemathesis")
import web_server as ws  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)


@pytest.fixture(scope="module")
def served(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ws.Served]:
    served = ws.start(ws.write_config(fixtures, tmp_path_factory.mktemp("web-fuzz"), max_upload_mb=1.0))
    yield served
    ws.stop(served)


def test_api_conforms_to_its_openapi_document(served: ws.Served) -> None:
    # Operations are walked here rather than with schemathesis.pytest.from_fixture, which pytest 9 breaks
    # (it renames test nodes through a private attribute pytest no longer has).
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json", headers=served.headers())
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures: dict[str, str] = {}
    tested = []
    for result in schema.exclude(path_regex=r"/live$").get_all_operations():
        operation = result.ok()
        # Valid requests (positive) and ones that break the document's constraints (negative, which must be
        # refused with a declared 4xx). 15 + 8 examples per operation reach each parameter's edges (types,
        # bounds, patterns) within a minute on a shared 2-core machine; no deadline: a detector call is slow here.
        for mode, examples in ((GenerationMode.POSITIVE, 15), (GenerationMode.NEGATIVE, 8)):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def run(case: Any) -> None:
                case.call_and_validate(headers=served.headers(), timeout=60, checks=checks)

            try:
                run()
            except Unsatisfiable:  # negative mode on an operation with nothing to break (no parameters)
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as e:  # keep going: one report naming every operation that failed
                failures[f"{operation.label} ({mode.value})"] = f"{type(e).__name__}: {e}"[:2000]
        tested.append(operation.label)
    assert len(tested) >= 14, tested  # every operation of the document but the live view was exercised
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
