"""Request and response bodies of the HTTP server (Cohere v1/v2, Jina, vLLM and TEI wire formats).

One request model serves Cohere v1, Jina and vLLM (they share ``query``, ``documents``,
``top_n``, ``return_documents`` and ``model``), one serves Cohere v2 and one serves
Hugging Face TEI (``query`` + ``texts``). Unknown fields are ignored, as the services we
imitate ignore or accept many vendor-specific extras (``truncation``, ``priority``...).

The response models exist for the OpenAPI document; the handlers build plain dicts of the
same shape, which skips a second validation pass on every response.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rerank_plugins._results import lone_surrogate_message

__all__ = [
    "ApiMeta",
    "ApiVersion",
    "BilledUnits",
    "DocumentObject",
    "ErrorBody",
    "ErrorDetail",
    "HealthResponse",
    "InfinityRerankRequest",
    "InfinityRerankResponse",
    "InfinityRerankResult",
    "MetaTokens",
    "RerankRequest",
    "RerankResponse",
    "RerankResult",
    "RerankV2Request",
    "TEIRank",
    "TEIRerankRequest",
    "Usage",
]

# Tags of the tagged unions below; they appear in pydantic's error locations and
# `_errors.format_location` drops them so that users see `documents[2]`, not
# `documents.2.string-document`.
DOCUMENT_STRING_TAG = "string-document"
DOCUMENT_OBJECT_TAG = "object-document"
COHERE_BODY_TAG = "cohere-request"
TEI_BODY_TAG = "tei-request"
UNION_TAGS = frozenset({DOCUMENT_STRING_TAG, DOCUMENT_OBJECT_TAG, COHERE_BODY_TAG, TEI_BODY_TAG})


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

# Values the handlers reject with a message of their own (the fix, not just "invalid"):
# the JSON Schema names the one value they accept, so schema and behaviour agree.
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

_TOP_N = Field(
    default=None,
    description="Return only the best `top_n` documents (all when omitted or null). "
    "Values above the number of documents return all of them; integral numbers such as "
    "`3.0` are taken as integers.",
)
_RETURN_DOCUMENTS = Field(
    default=True,
    strict=True,
    description="Include each document in its result as `document` ({'text': ...}, or the "
    "object that was sent). Defaults to true, as Jina and vLLM do; Cohere's default is false.",
)
_MODEL = Field(
    default=None,
    description="Accepted for compatibility and ignored: the server ranks with the model it "
    "was started with, and reports that model in the response.",
)


class RerankRequest(BaseModel):
    """Body of ``POST /rerank`` and ``POST /v1/rerank`` (Cohere v1, Jina, vLLM)."""

    model: str | None = _MODEL
    query: Query
    documents: list[Document] = Field(
        description="The documents to rank: strings, or objects with a `text` field."
    )
    top_n: PositiveInt | None = _TOP_N
    return_documents: bool = _RETURN_DOCUMENTS
    rank_fields: OnlyText | None = Field(
        default=None,
        description="Cohere v1: only null or ['text'] is supported; the `text` field is ranked.",
    )
    max_chunks_per_doc: PositiveInt | None = Field(
        default=None,
        description="Cohere v1: accepted and ignored; documents are truncated to the model's "
        "max_length instead of being chunked.",
    )


class RerankV2Request(BaseModel):
    """Body of ``POST /v2/rerank`` (Cohere v2, vLLM)."""

    model: str | None = _MODEL
    query: Query
    documents: list[Document] = Field(
        description="The documents to rank: strings (Cohere v2), or objects with a `text` field."
    )
    top_n: PositiveInt | None = _TOP_N
    return_documents: bool = _RETURN_DOCUMENTS
    max_tokens_per_doc: PositiveInt | None = Field(
        default=None,
        description="Cohere v2: accepted and ignored; documents are truncated to the model's "
        "max_length.",
    )


class TEIRerankRequest(BaseModel):
    """Body of ``POST /rerank`` in Hugging Face text-embeddings-inference's shape."""

    query: Query
    texts: list[Text] = Field(description="The texts to rank.")
    truncate: bool | None = Field(
        default=False,
        strict=True,
        description="Accepted and ignored: inputs longer than the model's max_length are "
        "always truncated (TEI answers 413 when this is false).",
    )
    truncation_direction: OnlyRight = Field(
        default="Right", description="Only 'Right' is supported (the end of the text is cut)."
    )
    raw_scores: OnlyFalse = Field(
        default=False,
        description="Only false is supported: scores are the model's activated scores.",
    )
    return_text: bool = Field(
        default=False, strict=True, description="Include each text as `text`."
    )


class InfinityRerankRequest(BaseModel):
    """Body of ``POST /infinity/rerank`` in michaelfeil/infinity's shape."""

    model: str | None = _MODEL
    query: Query
    documents: list[Text] = Field(description="The documents to rank (strings only).")
    top_n: PositiveInt | None = _TOP_N
    return_documents: bool = Field(
        default=False,
        strict=True,
        description="Include each document as the string `document` (Infinity's default is false).",
    )
    raw_scores: OnlyFalse = Field(
        default=False,
        description="Only false is supported: scores are the model's activated scores.",
    )


def _body_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return TEI_BODY_TAG if "texts" in value else COHERE_BODY_TAG
    return None


# `POST /rerank` takes both shapes: TEI clients post to /rerank, and so do Cohere v1 and
# vLLM's legacy route. A body with `texts` is a TEI request.
LegacyRerankBody = Annotated[
    Annotated[RerankRequest, Tag(COHERE_BODY_TAG)] | Annotated[TEIRerankRequest, Tag(TEI_BODY_TAG)],
    Discriminator(
        _body_tag,
        custom_error_type="body_type",
        custom_error_message="Request body should be a JSON object",
    ),
]

LEGACY_BODY_ADAPTER: TypeAdapter[RerankRequest | TEIRerankRequest] = TypeAdapter(LegacyRerankBody)
V1_BODY_ADAPTER: TypeAdapter[RerankRequest] = TypeAdapter(RerankRequest)
V2_BODY_ADAPTER: TypeAdapter[RerankV2Request] = TypeAdapter(RerankV2Request)
INFINITY_BODY_ADAPTER: TypeAdapter[InfinityRerankRequest] = TypeAdapter(InfinityRerankRequest)


# --- responses -------------------------------------------------------------------------------


class RerankResult(BaseModel):
    """One ranked document."""

    index: int = Field(description="Position of the document in the request's `documents`.")
    relevance_score: float = Field(description="The model's score; higher is more relevant.")
    document: DocumentObject | None = Field(
        default=None, description="The document, when `return_documents` is true."
    )


class Usage(BaseModel):
    """Token usage in the Jina and vLLM shape."""

    prompt_tokens: int
    total_tokens: int


class ApiVersion(BaseModel):
    """Cohere's ``meta.api_version``."""

    version: str


class BilledUnits(BaseModel):
    """Cohere's ``meta.billed_units``: one search unit per 100 documents."""

    search_units: int


class MetaTokens(BaseModel):
    """Cohere's ``meta.tokens``."""

    input_tokens: int
    output_tokens: int


class ApiMeta(BaseModel):
    """Cohere's ``meta`` object."""

    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: MetaTokens


class RerankResponse(BaseModel):
    """Response of the Cohere/Jina/vLLM endpoints, best result first."""

    id: str
    model: str
    results: list[RerankResult]
    usage: Usage
    meta: ApiMeta


class TEIRank(BaseModel):
    """One item of TEI's response (a bare JSON list of these, best first)."""

    index: int
    score: float
    text: str | None = Field(default=None, description="Present when `return_text` is true.")


class InfinityRerankResult(BaseModel):
    """One ranked document in Infinity's shape: ``document`` is a string, not an object."""

    relevance_score: float = Field(description="The model's score; higher is more relevant.")
    index: int = Field(description="Position of the document in the request's `documents`.")
    document: str | None = Field(
        default=None, description="The document's text, when `return_documents` is true."
    )


class InfinityRerankResponse(BaseModel):
    """Response of ``POST /infinity/rerank``, best result first."""

    object: Literal["rerank"] = "rerank"
    id: str
    created: int = Field(description="Unix time of the response, in seconds.")
    model: str
    results: list[InfinityRerankResult]
    usage: Usage


class HealthResponse(BaseModel):
    """Body of ``GET /health`` once the model is loaded."""

    status: str
    model: str


class ErrorDetail(BaseModel):
    """The ``error`` object of every error response."""

    type: str = Field(description="A stable machine-readable error type.")
    message: str = Field(description="What was wrong and how to fix it.")
    code: int = Field(description="The HTTP status code.")


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {...}, "detail": message}``."""

    error: ErrorDetail
    detail: str = Field(description="The same message, where FastAPI clients look for it.")
