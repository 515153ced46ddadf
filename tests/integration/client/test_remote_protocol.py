"""RemoteScorer's protocol core, driven by hand: no transport, no socket, no retries.

The sync and async paths both run ``Protocol.exchange``; these tests send it answers
directly, to pin what it asks for and how it reads each answer.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rerank_plugins import RemoteRerankError
from rerank_plugins.client._protocol import Protocol, TooManyDocumentsError, drive
from rerank_plugins.client._settings import Settings

pytestmark = pytest.mark.integration

URL = "http://rerank.test/v1"
DOCUMENTS = ["cats sleep on sofas", "dogs bark", "trains run on rails"]


def settings(**options: Any) -> Settings:
    arguments: dict[str, Any] = {
        "api_key": None,
        "protocol": "auto",
        "model": None,
        "timeout": 5.0,
        "max_retries": 0,
        "retry_backoff": 0.0,
        "retry_read_timeouts": False,
        "max_documents_per_request": None,
        "headers": None,
        "extra_body": None,
        **options,
    }
    return Settings.create(URL, **arguments)


def test_auto_probes_jina_then_tei_and_keeps_what_answered() -> None:
    protocol = Protocol(settings(extra_body={"truncate_prompt_tokens": 8}))
    exchange = protocol.exchange("cats", DOCUMENTS)

    first = next(exchange)
    assert first.url == "http://rerank.test/v1/rerank"
    assert first.body == {
        "query": "cats",
        "documents": DOCUMENTS,
        "return_documents": False,
        "truncate_prompt_tokens": 8,
    }
    second = exchange.send(httpx.Response(404, json={"detail": "Not Found"}))
    assert second.url == "http://rerank.test/v1/rerank"  # TEI's path is base_url + /rerank
    assert second.body["texts"] == DOCUMENTS
    tei_answer = [{"index": 2, "score": 0.1}, {"index": 0, "score": 0.9}, {"index": 1, "score": 0}]
    with pytest.raises(StopIteration) as done:
        exchange.send(httpx.Response(200, json=tei_answer))

    assert done.value.value == [0.9, 0.0, 0.1]
    assert not protocol.detecting
    assert next(protocol.exchange("cats", DOCUMENTS)).body["texts"] == DOCUMENTS


def test_three_refusals_name_every_probe() -> None:
    answers = iter([httpx.Response(404), httpx.Response(422), httpx.Response(405)])
    with pytest.raises(
        RemoteRerankError,
        match=r"^Found no rerank API at 'http://rerank\.test/v1'\. Tried: "
        r"POST http://rerank\.test/v1/rerank \(jina body\) -> 404: \(empty body\); "
        r"POST http://rerank\.test/v1/rerank \(tei body\) -> 422: \(empty body\); "
        r"POST http://rerank\.test/v1/rerank \(infinity body\) -> 405: \(empty body\)\.",
    ) as err:
        drive(Protocol(settings()).exchange("cats", DOCUMENTS), lambda request: next(answers))
    assert err.value.status_code == 405, "the last answer that was not a 404"


def test_a_named_limit_is_learned_and_splits_the_next_calls() -> None:
    protocol = Protocol(settings(protocol="tei"))
    refusal = httpx.Response(413, json={"error": "batch size 3 > maximum allowed batch size 2"})
    with pytest.raises(TooManyDocumentsError) as refused:
        drive(protocol.exchange("cats", DOCUMENTS), lambda request: refusal)
    assert refused.value.limit == 2
    assert protocol.split(0, 3) is None, "no limit before it is learned"

    protocol.learn_limit(refused.value, 3)

    assert protocol.split(0, 3) == [(0, 2), (2, 3)]
    assert protocol.split(0, 2) is None
