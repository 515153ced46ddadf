"""Property-based contract test: the server behaves as its OpenAPI document says (schemathesis).

Requests generated from the schema (valid ones, and invalid ones that must be rejected) go to
the in-process app on the tiny BERT; every response must match its documented status code,
content type and schema, and no request may cause a 5xx. Bounded and derandomized (examples
derived from each test, no example database), so it runs offline in seconds and fails the same
way each time. It found: integral floats (``top_n: 469.0``) rejected, ``return_documents: 0``
accepted, a whitespace-only query allowed by the schema but rejected, and /metrics' 401
undocumented.

``schema.parametrize()`` with ``schemathesis.pytest.from_fixture`` fails on pytest 9 (it reads
``request.node._nodeid``), so each operation's Hypothesis strategy is driven directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from rerank_plugins import get_scorer  # noqa: E402
from rerank_plugins.server.app import create_app  # noqa: E402

pytestmark = pytest.mark.integration

API_KEY = "schemathesis-key-0123"
OPERATIONS = [
    ("POST", "/rerank"),
    ("POST", "/v1/rerank"),
    ("POST", "/v2/rerank"),
    ("POST", "/infinity/rerank"),
    ("GET", "/health"),
    ("GET", "/metrics"),
]
MODES = {"valid": "POSITIVE", "invalid": "NEGATIVE"}


@pytest.fixture(scope="module")
def api_schema(tiny_bert: Path) -> Any:
    """The OpenAPI schema, loaded from the app on the tiny BERT (with an API key)."""
    app = create_app(get_scorer(str(tiny_bert)), api_key=API_KEY)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_covered(api_schema: Any) -> None:
    documented = {
        (method.upper(), path)
        for path, methods in api_schema.raw_schema["paths"].items()
        for method in methods
    }
    assert documented == set(OPERATIONS)


# GET /health and /metrics take no input, so there is no invalid request to generate.
CASES = [
    pytest.param(method, path, mode, id=f"{path}-{mode}")
    for method, path in OPERATIONS
    for mode in MODES
    if method == "POST" or mode == "valid"
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_server_matches_its_openapi_document(
    api_schema: Any, method: str, path: str, mode: str
) -> None:
    """Every generated request gets a documented status, content type and body; never a 5xx."""
    generation_mode = getattr(schemathesis.GenerationMode, MODES[mode])
    strategy = api_schema[path][method].as_strategy(generation_mode=generation_mode)

    @given(case=strategy)
    @settings(
        max_examples=15,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if mode == "valid" and case.headers:
            # A valid X-Request-Timeout (say 1e-300 s) rightly ends in the documented 503/504
            # deadline answers, which the "no 5xx" check would flag; deadlines have their own
            # tests (test_overload.py). Invalid values stay: they must be 422.
            case.headers.pop("X-Request-Timeout", None)
        case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"})

    check()
