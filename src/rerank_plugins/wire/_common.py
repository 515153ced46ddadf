"""Pieces every rerank dialect shares: text validators, documents, the dialect type, scores.

The request models of the dialects are built from the annotated types here (``Text``,
``Query``, ``PositiveInt``, ``Document``...), so a string is checked the same way whichever
wire format it arrives in. :class:`Dialect` is what the client and the server use of a
dialect module; :func:`scores_by_index` is how every response is read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rerank_plugins._results import lone_surrogate_message

if TYPE_CHECKING:
    from rerank_plugins._results import RankResult

__all__ = [
    "DOCUMENT_OBJECT_TAG",
    "DOCUMENT_STRING_TAG",
    "MODEL",
    "RETURN_DOCUMENTS",
    "TOP_N",
    "Dialect",
    "Document",
    "DocumentObject",
    "Inputs",
    "OnlyFalse",
    "OnlyRight",
    "OnlyText",
    "PositiveInt",
    "Query",
    "Reply",
    "ResponseShapeError",
    "ServiceModel",
    "ServiceResult",
    "Text",
    "UnsupportedFieldError",
    "Usage",
    "document_json",
    "document_text",
    "scores_by_index",
]

_MAX_PREVIEW_CHARS = 500

# Tags of the tagged unions of documents (here) and bodies (`cohere_v1`); they appear in
# pydantic's error locations, and the server drops them so that users see `documents[2]`,
# not `documents.2.string-document`.
DOCUMENT_STRING_TAG = "string-document"
DOCUMENT_OBJECT_TAG = "object-document"


class ResponseShapeError(ValueError):
    """A rerank response does not have the shape of its dialect, or does not fit the request.

    The message is a clause that completes ``"POST <url> answered <status> "``: the client
    prefixes it so (``f"POST {url} answered {status} {err}"``) to name where it came from.
    """


class UnsupportedFieldError(ValueError):
    """A request field has a value this implementation does not support (the server: 422).

    The message names the field, its value and the fix.
    """


# --- strings ---------------------------------------------------------------------------------


def _reject_lone_surrogate(subject: str, text: str) -> None:
    problem = lone_surrogate_message(text)
    if problem is not None:
        kind, template = "lone_surrogate", "{subject} {problem}"
        raise PydanticCustomError(kind, template, {"subject": subject, "problem": problem})


def _check_text(value: Any) -> Any:
    r"""Reject a lone surrogate (``"\ud83d"`` in JSON): no tokenizer or UTF-8 writer takes it.

    Runs before pydantic's own string check, whose message for some of them ("unable to
    parse raw data as a unicode string") does not say what is wrong.
    """
    if isinstance(value, str):
        _reject_lone_surrogate("String", value)
    return value


def _check_query(value: str) -> str:
    if not value.strip():
        kind = "blank_query"
        raise PydanticCustomError(kind, "String should contain a character that is not whitespace")
    return value


def _integral(value: Any) -> Any:
    """Take integral floats as ints (``469.0`` from JavaScript clients); JSON Schema does too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Text = Annotated[str, BeforeValidator(_check_text)]
"""A string without lone surrogates."""

# A non-blank query: the JSON Schema `pattern` documents what `_check_query` enforces.
Query = Annotated[
    str,
    Field(
        min_length=1,
        json_schema_extra={"pattern": r"\S"},
        description="The search query; it must contain a character that is not whitespace.",
    ),
    AfterValidator(_check_query),
    BeforeValidator(_check_text),
]

# Strict ints (no "2" or true), but integral floats such as 469.0 count as ints.
PositiveInt = Annotated[int, Field(strict=True, ge=1), BeforeValidator(_integral)]

# Values the server rejects with a message of its own (the fix, not just "invalid"):
# the JSON Schema names the one value it accepts, so schema and behaviour agree.
OnlyFalse = Annotated[bool, Field(strict=True), WithJsonSchema({"type": "boolean", "const": False})]
OnlyRight = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^[Rr][Ii][Gg][Hh][Tt]$"})]
OnlyText = Annotated[
    list[str],
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "const": "text"},
            "minItems": 1,
            "maxItems": 1,
        }
    ),
]


# --- documents -------------------------------------------------------------------------------


class DocumentObject(BaseModel):
    """A document given as an object: ``text`` is ranked, other fields are echoed back."""

    model_config = ConfigDict(extra="allow")

    text: Text = Field(description="The text to rank against the query.")

    @model_validator(mode="after")
    def _check_extra_strings(self) -> DocumentObject:
        """Echoed fields must be encodable too, or the response could not be written."""
        for name, value in (self.model_extra or {}).items():
            for text in (name, *_strings(value)):
                _reject_lone_surrogate(f"Field {name!r}", text)
        return self


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value: keys and values of objects, items of arrays."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (*_strings(key), *_strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _document_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return DOCUMENT_STRING_TAG
    if isinstance(value, (dict, DocumentObject)):
        return DOCUMENT_OBJECT_TAG
    return None


# A plain `str | DocumentObject` union reports one error per branch for a bad item
# ("should be a valid string; should be a valid dictionary"); the discriminator reports one.
Document = Annotated[
    Annotated[Text, Tag(DOCUMENT_STRING_TAG)] | Annotated[DocumentObject, Tag(DOCUMENT_OBJECT_TAG)],
    Discriminator(
        _document_tag,
        custom_error_type="document_type",
        custom_error_message="Input should be a string or an object with a 'text' string",
    ),
]


def document_json(document: str | DocumentObject) -> dict[str, Any]:
    """A document as it is echoed back: ``{"text": ...}``, or the object that was sent."""
    if isinstance(document, str):
        return {"text": document}
    return document.model_dump()


def document_text(document: str | DocumentObject) -> str:
    """The text to rank of a string or object document."""
    return document if isinstance(document, str) else document.text


# Field definitions shared by the Cohere-shaped request models.
TOP_N = Field(
    default=None,
    description="Return only the best `top_n` documents (all when omitted or null). "
    "Values above the number of documents return all of them; integral numbers such as "
    "`3.0` are taken as integers.",
)
RETURN_DOCUMENTS = Field(
    default=True,
    strict=True,
    description="Include each document in its result as `document` ({'text': ...}, or the "
    "object that was sent). Defaults to true, as Jina and vLLM do; Cohere's default is false.",
)
MODEL = Field(
    default=None,
    description="Accepted for compatibility and ignored: the server ranks with the model it "
    "was started with, and reports that model in the response.",
)


class ServiceModel(BaseModel):
    """Base of the models of a real service's responses: fields they do not name are kept.

    A service adds fields over time (``warnings``, ``meta.tokens``...); keeping them means a
    response read and written back is the response that came in.
    """

    model_config = ConfigDict(extra="allow")


class ServiceResult(ServiceModel):
    """One result as Cohere, Jina and vLLM answer it.

    ``index``, ``relevance_score``, and the document when it was asked for (vLLM's may
    carry ``multi_modal: null``).
    """

    index: int
    relevance_score: float
    document: DocumentObject | None = None


class Usage(BaseModel):
    """Token usage in the Jina and vLLM shape."""

    prompt_tokens: int
    total_tokens: int


# --- the dialect type ------------------------------------------------------------------------


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
