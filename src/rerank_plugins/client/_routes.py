"""The rerank APIs the client speaks: where each posts, what it sends, how its answer reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rerank_plugins.client._messages import preview

__all__ = ["AUTO_ROUTES", "ROUTES", "Route", "read_scores"]


@dataclass(frozen=True)
class Route:
    """One way to call a rerank API: where to post and what to send."""

    protocol: str
    path: str
    from_root: bool
    """Whether ``path`` is appended to the server root (``base_url`` minus ``/v1``/``/v2``)."""
    documents_field: str
    extra: tuple[tuple[str, Any], ...]
    sends_model: bool = True

    def body(self, query: str, documents: list[str], model: str | None) -> dict[str, Any]:
        """The request body for ``documents`` (``model`` only when given and wanted)."""
        body: dict[str, Any] = {"query": query, self.documents_field: documents}
        if model is not None and self.sends_model:
            body["model"] = model
        body.update(self.extra)
        return body


ROUTES = {
    "cohere": Route("cohere", "/v2/rerank", True, "documents", ()),
    "jina": Route("jina", "/v1/rerank", True, "documents", (("return_documents", False),)),
    # vLLM returns documents regardless and logs a warning for fields it does not know.
    "vllm": Route("vllm", "/v1/rerank", True, "documents", ()),
    "infinity": Route(
        "infinity",
        "/rerank",
        False,
        "documents",
        (("return_documents", False), ("raw_scores", False)),
    ),
    "tei": Route(
        "tei",
        "/rerank",
        False,
        "texts",
        (("truncate", True), ("raw_scores", False), ("return_text", False)),
        sends_model=False,
    ),
}
AUTO_ROUTES = (ROUTES["jina"], ROUTES["tei"], ROUTES["infinity"])
"""What ``protocol="auto"`` tries, in order, until one is not refused."""


class ResultsError(ValueError):
    """A response that does not score every document exactly once.

    The message completes ``"POST <url> answered <status> "``, which the caller puts before it.
    """


def read_scores(payload: Any, text: str, count: int, protocol: str) -> list[float]:
    """Map a rerank response back to one score per document, by each result's ``index``.

    Accepts TEI's bare list of ``{index, score}``, and ``{"results": [...]}`` (Cohere, Jina,
    vLLM, Infinity, ours) or ``{"data": [...]}`` (older Infinity) of ``{index,
    relevance_score}``. Every document must be scored exactly once; else ``ResultsError``.
    ``text`` is the response body, shown in the error.
    """
    items = payload
    if isinstance(payload, dict):
        items = payload.get("results", payload.get("data"))
    if not isinstance(items, list):
        msg = (
            f"without a list of results (expected the {protocol!r} response shape): "
            f"{preview(text)}."
        )
        raise ResultsError(msg)
    scores: list[float | None] = [None] * count
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        value = item.get("relevance_score", item.get("score")) if isinstance(item, dict) else None
        valid_index = isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count
        valid_score = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (valid_index and valid_score) or scores[index] is not None:  # type: ignore[index]
            msg = (
                f"with a result that does not fit {count} documents: {preview(repr(item))}. "
                f"Each result needs a unique 'index' in [0, {count}) and a numeric "
                "'relevance_score' (or 'score')."
            )
            raise ResultsError(msg)
        scores[index] = float(value)  # type: ignore[index,arg-type]
    missing = [i for i, value in enumerate(scores) if value is None]
    if missing:
        msg = (
            f"with {count - len(missing)} results for {count} documents (missing indices "
            f"{missing[:10]}{'...' if len(missing) > 10 else ''}). The server must score every "
            "document; does it apply a default top_n?"
        )
        raise ResultsError(msg)
    return [value for value in scores if value is not None]
