"""Hostile bodies: oversized bodies get 413 before they are read, deep JSON gets 422.

Issue 9 item 5. Before, a 64 MB JSON body was read, parsed and answered 200 (peak RSS +200
MB), and JSON nested 1,000+ levels deep was a 500 with two tracebacks in the log.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rerank_plugins.server._defaults import default_max_body_bytes
from rerank_plugins.server.app import create_app
from tests._servers import serve_in_thread

pytestmark = pytest.mark.integration

GOOD = {"query": "capital of France", "documents": ["Paris is in France.", "Bananas."]}


def assert_error(response: Any, status: int, error_type: str, message: str) -> None:
    """The response is the shared error body with this status, type and exact message."""
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": {"type": error_type, "message": message, "code": status},
        "detail": message,
    }


def too_large(limit: int, size: str) -> str:
    return (
        f"The request body is larger than max_body_bytes={limit} ({size}). Send fewer or "
        "shorter documents per request, or raise the limit with `rerank-plugins serve "
        "--max-body-bytes N` (create_app(max_body_bytes=N))."
    )


# --- body size ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(make_client, word_overlap):
    """Bug: there was no body-size limit; any body was read and parsed whole."""
    client = make_client(word_overlap, max_body_bytes=1000)
    body = json.dumps({"query": "q", "documents": ["x" * 100] * 10}).encode()

    response = client.post("/v1/rerank", content=body)

    assert_error(
        response,
        413,
        "request_too_large_error",
        too_large(1000, f"Content-Length: {len(body)}"),
    )
    assert response.headers["connection"] == "close"
    assert word_overlap.calls == []


def test_a_body_at_the_limit_is_served(make_client, word_overlap):
    body = json.dumps(GOOD).encode()
    client = make_client(word_overlap, max_body_bytes=len(body))

    assert client.post("/v1/rerank", content=body).status_code == 200


def test_the_default_limit_admits_any_request_within_the_document_limits(make_client, word_overlap):
    """The derived default must not refuse a request the document limits allow."""
    client = make_client(word_overlap, max_documents=20, max_document_chars=50)
    widest = "\U0001f600" * 50  # 4 bytes per character in UTF-8
    body = json.dumps(
        {"query": widest, "documents": [{"text": widest}] * 20}, ensure_ascii=False
    ).encode()
    assert len(body) <= default_max_body_bytes(20, 50)

    response = client.post("/v1/rerank", content=body)

    assert response.status_code == 200, response.text


def test_create_app_rejects_a_bad_body_limit(word_overlap):
    with pytest.raises(ValueError, match=r"max_body_bytes must be a positive int, got 0\."):
        create_app(word_overlap, max_body_bytes=0)


@pytest.fixture
def small_limit_server(word_overlap: Any) -> Iterator[str]:
    """A real loopback server whose body limit is 64 KiB."""
    with serve_in_thread(create_app(word_overlap, max_body_bytes=65_536)) as url:
        yield url


def test_a_declared_length_over_the_limit_is_answered_before_the_body(small_limit_server):
    """The 413 must come from Content-Length alone: the server must not wait for the body."""
    host, port = small_limit_server.removeprefix("http://").split(":")
    request = (
        f"POST /v1/rerank HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000000\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)  # and never send the gigabyte
        start = time.monotonic()
        answer = sock.recv(65_536).decode()
        elapsed = time.monotonic() - start

    assert answer.startswith("HTTP/1.1 413 ")
    assert too_large(65_536, "Content-Length: 1000000000") in answer
    assert elapsed < 5


def test_a_chunked_body_is_cut_off_at_the_limit(small_limit_server, word_overlap):
    """A body without Content-Length is counted while it streams in."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"query": "q", "documents": ["'
        for _ in range(2000):  # 128 MB if all were sent
            sent += 1
            yield b"x" * 65_536
        yield b'"]}'

    response = httpx.post(f"{small_limit_server}/v1/rerank", content=chunks(), timeout=30)

    assert_error(
        response,
        413,
        "request_too_large_error",
        too_large(65_536, "the chunked body passed it"),
    )
    assert sent < 2000, "the server must stop reading at the limit"
    assert word_overlap.calls == []
    metrics = httpx.get(f"{small_limit_server}/metrics").text
    assert 'endpoint="/v1/rerank",method="POST",status="413"' in metrics


# --- deep JSON ---------------------------------------------------------------------------------

TOO_DEEP = (
    "Request body nests arrays or objects more than 32 levels deep. Send a JSON object such "
    'as {"query": "...", "documents": ["...", "..."]}.'
)


def _nested(levels: int) -> bytes:
    """A rerank body whose vendor extra nests ``levels`` arrays (the body is 1 + levels deep)."""
    return b'{"query": "q", "documents": ["a"], "extra": ' + b"[" * levels + b"]" * levels + b"}"


@pytest.mark.parametrize("levels", [32, 990, 1000, 100_000])
def test_deeply_nested_json_is_422_without_tracebacks(make_client, word_overlap, levels, caplog):
    """Bug: JSON nested 1,000+ levels deep was a 500 (RecursionError) with two tracebacks."""
    client = make_client(word_overlap, raise_server_exceptions=False)

    with caplog.at_level(logging.DEBUG):
        response = client.post("/v1/rerank", content=_nested(levels))

    assert_error(response, 422, "invalid_request_error", TOO_DEEP)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert client.post("/v1/rerank", json=GOOD).status_code == 200


def test_deeply_nested_documents_are_422(make_client, word_overlap):
    client = make_client(word_overlap)
    body = b'{"query": "q", "documents": ' + b"[" * 5000 + b"]" * 5000 + b"}"

    assert_error(client.post("/v1/rerank", content=body), 422, "invalid_request_error", TOO_DEEP)


def test_nesting_up_to_the_limit_is_served(make_client, word_overlap):
    client = make_client(word_overlap)

    response = client.post("/v1/rerank", content=_nested(31))

    assert response.status_code == 200, response.text
