"""RemoteScorer.rank with the context options: selection on the client side of the wire."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rerank_plugins import RemoteScorer

pytestmark = pytest.mark.integration

QUERY = "How long does a cat sleep each day?"
PASSAGES = [
    "The high-speed train reaches 300 km/h between the two cities.",
    "Cats sleep for twelve to sixteen hours a day, mostly during daylight.",
    "CATS  sleep for twelve to sixteen hours a day, mostly during daylight.",
    "Tokyo is the capital of Japan.",
    "Kittens sleep even more than adult cats do.",
]
OPTIONS: dict[str, Any] = {
    "max_context_tokens": 20,
    "length_function": lambda text: len(text.split()),
    "deduplicate": True,
    "order": "long_context",
}


def test_remote_selection_equals_local(real_server: str, api_key: str, local_scorer: Any) -> None:
    expected = local_scorer.rank(QUERY, PASSAGES, **OPTIONS)
    with RemoteScorer(real_server, api_key=api_key) as remote:
        got = remote.rank(QUERY, PASSAGES, **OPTIONS)
    assert [(r.index, r.tokens, r.duplicates) for r in got] == [
        (r.index, r.tokens, r.duplicates) for r in expected
    ]
    assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert any(r.duplicates == (2,) for r in got)


def test_async_remote_selection_equals_sync(real_server: str, api_key: str) -> None:
    async def arank() -> list[Any]:
        async with RemoteScorer(real_server, api_key=api_key) as remote:
            return await remote.arank(QUERY, PASSAGES, **OPTIONS)

    with RemoteScorer(real_server, api_key=api_key) as remote:
        sync = remote.rank(QUERY, PASSAGES, **OPTIONS)
    asynchronous = asyncio.run(arank())
    assert [(r.index, r.tokens) for r in asynchronous] == [(r.index, r.tokens) for r in sync]


def test_budget_needs_a_length_function_and_fails_before_any_request() -> None:
    """A remote scorer has no tokenizer here; the error must come before the network."""
    remote = RemoteScorer("http://127.0.0.1:9", max_retries=0)
    message = r"^max_context_tokens needs a token counter: pass length_function=\.\.\."
    with pytest.raises(ValueError, match=message):
        remote.rank(QUERY, PASSAGES, max_context_tokens=100)
