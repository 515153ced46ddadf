"""The one positive-seconds check, and how a rerank route picks the dialect of a body."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("fastapi")

from rerank_plugins.server._defaults import positive_seconds
from rerank_plugins.server._routes import RERANK_ROUTES, RerankRoute
from rerank_plugins.wire import cohere_v1, tei

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        (" 2.5 ", 2.5),
        (30, 30.0),
        (0.001, 0.001),
        ("0", None),
        (0, None),
        (-1, None),
        ("-0", None),
        ("nan", None),
        (math.inf, None),
        ("inf", None),
        (True, None),
        ("thirty", None),
        (None, None),
        ([30], None),
    ],
    ids=repr,
)
def test_positive_seconds(value, seconds):
    """One check for create_app, `serve --request-timeout` and X-Request-Timeout (it was 3)."""
    assert positive_seconds(value) == seconds


def test_rerank_takes_cohere_and_tei_bodies():
    route = next(route for route in RERANK_ROUTES if route.path == "/rerank")
    tei_body = tei.TEIRerankRequest(query="q", texts=["a"])
    cohere_body = cohere_v1.RerankRequest(query="q", documents=["a"])

    assert route.dialect_for(tei_body) is tei.DIALECT
    assert route.dialect_for(cohere_body) is cohere_v1.DIALECT
    assert route.takes_texts


def test_a_route_refuses_a_body_none_of_its_dialects_takes():
    route = RerankRoute(
        path="/tei-only",
        name="tei_only",
        summary="TEI",
        adapter=RERANK_ROUTES[0].adapter,
        dialects=(tei.DIALECT,),
        ok={},
    )

    with pytest.raises(TypeError, match=r"^/tei-only parsed a RerankRequest, which none of its"):
        route.dialect_for(cohere_v1.RerankRequest(query="q", documents=["a"]))
