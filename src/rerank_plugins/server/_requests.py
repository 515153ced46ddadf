"""Reading a request: its JSON body (parsed by hand), its size limits and its deadline.

Bodies are parsed here rather than by FastAPI's body parameters so that a missing or wrong
``Content-Type`` header (``curl -d`` sends a form type) still parses as JSON, and so that
every problem gets the same error shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from rerank_plugins.server._defaults import REQUEST_TIMEOUT_HEADER, positive_seconds
from rerank_plugins.server._errors import APIError, validation_error_from_pydantic

if TYPE_CHECKING:
    from fastapi import Request

    from rerank_plugins.server._settings import Settings

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "MAX_JSON_DEPTH",
    "check_limits",
    "client_gone",
    "parse_body",
    "request_timeout",
]

logger = logging.getLogger(__name__)

# A rerank body nests 3 levels ({"documents": [{"text": ...}]}); vendor extras a few more.
# Deeper bodies are refused before validation, which (like repr) recurses per level.
MAX_JSON_DEPTH = 32
# Status for requests whose client went away (nginx's convention; nobody receives it, but
# it is what /metrics and the access log show).
CLIENT_CLOSED_REQUEST = 499

_BodyT = TypeVar("_BodyT")


def client_gone(request: Request, when: str) -> APIError:
    """The error (never received) for a request whose client disconnected, logged at INFO."""
    logger.info("The client of %s %s disconnected %s.", request.method, request.url.path, when)
    return APIError(
        CLIENT_CLOSED_REQUEST,
        f"The client closed the connection {when}.",
        error_type="client_closed_request",
    )


async def parse_body(request: Request, adapter: TypeAdapter[_BodyT], *, texts_hint: str) -> _BodyT:
    """The request's JSON body validated by ``adapter``, or a 422 naming what is wrong.

    ``texts_hint`` is added to validation errors of bodies with a ``texts`` field (TEI's),
    to say where such bodies go; ``""`` where they are served.
    """
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise client_gone(request, "while sending its body") from None
    if not raw.strip():
        raise APIError(
            422,
            "Request body is empty. Send a JSON object such as "
            '{"query": "...", "documents": ["...", "..."]}.',
        )
    too_deep = APIError(
        422,
        f"Request body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep. "
        'Send a JSON object such as {"query": "...", "documents": ["...", "..."]}.',
    )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(
            422,
            f"Request body is not valid JSON ({exc}). Send a JSON object with "
            "'Content-Type: application/json'.",
        ) from exc
    except RecursionError:
        # Deeper than the interpreter's recursion limit: not worth a traceback in the log.
        raise too_deep from None
    # Counting brackets is cheap and skips the walk for the usual bodies (lists of strings).
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_JSON_DEPTH and _nesting_depth(data) > MAX_JSON_DEPTH:
        raise too_deep
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        hint = texts_hint if isinstance(data, dict) and "texts" in data else ""
        raise validation_error_from_pydantic(exc, hint=hint) from exc


def _nesting_depth(data: object) -> int:
    """How many arrays/objects deep ``data`` nests, without recursion (bodies may be hostile)."""
    if not isinstance(data, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:  # one level past the limit is enough to know
            break
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_limits(request: Request, query: str, texts: Sequence[str]) -> None:
    """413 for more documents than ``max_documents``, or a text over ``max_document_chars``."""
    settings: Settings = request.app.state.settings
    if len(texts) > settings.max_documents:
        raise APIError(
            413,
            f"Too many documents: got {len(texts)}, the limit is max_documents="
            f"{settings.max_documents}. Send fewer documents per request, or raise the "
            "limit with `rerank-plugins serve --max-documents N` "
            "(create_app(max_documents=N)).",
        )
    limit = settings.max_document_chars
    if len(query) > limit:
        raise APIError(
            413,
            f"The query has {len(query)} characters, more than max_document_chars={limit}. "
            "Shorten it, or raise the limit with `rerank-plugins serve "
            "--max-document-chars N` (create_app(max_document_chars=N)).",
        )
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise APIError(
                413,
                f"Document {i} has {len(text)} characters, more than max_document_chars="
                f"{limit}. Split or shorten it, or raise the limit with `rerank-plugins "
                "serve --max-document-chars N` (create_app(max_document_chars=N)).",
            )


def request_timeout(request: Request) -> float | None:
    """The request's deadline in seconds: the server's, shortened by the client's header."""
    settings: Settings = request.app.state.settings
    raw = request.headers.get(REQUEST_TIMEOUT_HEADER)
    if raw is None:
        return settings.request_timeout
    seconds = positive_seconds(raw)
    if seconds is None:
        raise APIError(
            422,
            f"The {REQUEST_TIMEOUT_HEADER} header must be a positive number of seconds, got "
            f"{raw[:40]!r}. Send for example '{REQUEST_TIMEOUT_HEADER}: 30', or omit it.",
        )
    if settings.request_timeout is None:
        return seconds
    return min(seconds, settings.request_timeout)
