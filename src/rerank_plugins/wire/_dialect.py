"""The dialect type: what the client and the server use of a dialect module.

A :class:`Dialect` bundles one wire format's client side (where to post, what to send, how
to read the answer) and server side (the body to parse, its conversion to the scorer's
:class:`Inputs` and from the ranked results to a :class:`Reply`). :func:`scores_by_index`
is how every response is read back, whatever its dialect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from rerank_plugins._results import RankResult

__all__ = [
    "Dialect",
    "Inputs",
    "Reply",
    "ResponseShapeError",
    "UnsupportedFieldError",
    "scores_by_index",
]

_MAX_PREVIEW_CHARS = 500


class ResponseShapeError(ValueError):
    """A rerank response does not have the shape of its dialect, or does not fit the request.

    The message is a clause that completes ``"POST <url> answered <status> "``: the client
    prefixes it so (``f"POST {url} answered {status} {err}"``) to name where it came from.
    """


class UnsupportedFieldError(ValueError):
    """A request field has a value this implementation does not support (the server: 422).

    The message names the field, its value and the fix.
    """


@dataclass(frozen=True)
class Inputs:
    """What a request asks the scorer for: the query, the texts to rank and ``top_n``."""

    query: str
    texts: list[str]
    top_n: int | None = None


@dataclass(frozen=True)
class Reply:
    """A response in a dialect's shape: the JSON ``content`` and extra response headers."""

    content: Any
    headers: dict[str, str] = field(default_factory=dict)


BodyT = TypeVar("BodyT", bound=BaseModel)


@dataclass(frozen=True)
class Dialect(Generic[BodyT]):
    """One rerank wire format: where to post, what to send, and how the answer reads.

    Client side: :attr:`name`, :attr:`path`, :attr:`from_root`, :meth:`request_body` and
    :meth:`read_scores`. Server side: :attr:`request_model` (the body the server parses),
    :attr:`inputs` (body to scorer inputs, raising :class:`UnsupportedFieldError`) and
    :attr:`reply` (the scorer's ranked results to the response). :attr:`response_model`
    is the response the real service documents, which :meth:`read_scores` reads.
    """

    name: str
    """The protocol name (``RemoteScorer(protocol=...)``) and registry key."""
    path: str
    """The path the real service serves this format at, which the client posts to."""
    from_root: bool
    """Whether :attr:`path` is appended to the server root (``base_url`` minus a trailing
    ``/v1`` or ``/v2``) rather than to ``base_url`` as given."""
    request_model: type[BodyT]
    response_model: type[BaseModel]
    inputs: Callable[[BodyT], Inputs]
    reply: Callable[[BodyT, Sequence[RankResult], str, int], Reply]
    """``reply(body, results, model, tokens)``: results best first, as the scorer ranked."""
    documents_field: str = "documents"
    extra: tuple[tuple[str, Any], ...] = ()
    """Fields the client always sends (e.g. ``return_documents=False``), in this order."""
    sends_model: bool = True
    """Whether the client sends ``model`` (when it has one)."""

    def request_body(self, query: str, documents: list[str], model: str | None) -> dict[str, Any]:
        """The JSON body the client posts: query, documents, ``model`` when given, extras."""
        body: dict[str, Any] = {"query": query, self.documents_field: documents}
        if model is not None and self.sends_model:
            body["model"] = model
        body.update(self.extra)
        return body

    def read_scores(self, payload: object, count: int) -> list[float]:
        """One score per input document (``count`` of them), by each result's ``index``.

        Raises:
            ResponseShapeError: ``payload`` has no list of results, or its results do not
                score each of the ``count`` documents exactly once.
        """
        return scores_by_index(payload, count, self.name)


# --- reading responses -----------------------------------------------------------------------


def _preview(text: str, limit: int = _MAX_PREVIEW_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scores_by_index(payload: object, count: int, dialect: str) -> list[float]:
    """Map a decoded rerank response back to one score per document, by ``index``.

    Accepts TEI's bare list of ``{index, score}``, and ``{"results": [...]}`` (Cohere, Jina,
    vLLM, Infinity, ours) or ``{"data": [...]}`` (older Infinity) of ``{index,
    relevance_score}``, whatever the ``dialect``: servers that speak several formats answer
    in either. Every document must be scored exactly once.

    Raises:
        ResponseShapeError: As :meth:`Dialect.read_scores`.
    """
    items = payload
    if isinstance(payload, dict):
        items = payload.get("results", payload.get("data"))
    if not isinstance(items, list):
        shown = _preview(json.dumps(payload, ensure_ascii=False, default=repr))
        msg = f"without a list of results (expected the {dialect!r} response shape): {shown}."
        raise ResponseShapeError(msg)
    scores: list[float | None] = [None] * count
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        value = item.get("relevance_score", item.get("score")) if isinstance(item, dict) else None
        valid_index = isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count
        valid_score = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (valid_index and valid_score) or scores[index] is not None:  # type: ignore[index]
            msg = (
                f"but returned a result that does not fit {count} documents: "
                f"{_preview(repr(item))}. Each result needs a unique 'index' in "
                f"[0, {count}) and a numeric 'relevance_score' (or 'score')."
            )
            raise ResponseShapeError(msg)
        scores[index] = float(value)  # type: ignore[index,arg-type]
    missing = [i for i, value in enumerate(scores) if value is None]
    if missing:
        msg = (
            f"but returned {count - len(missing)} results for {count} documents "
            f"(missing indices {missing[:10]}{'...' if len(missing) > 10 else ''}). The server "
            "must score every document; does it apply a default top_n?"
        )
        raise ResponseShapeError(msg)
    return [value for value in scores if value is not None]
