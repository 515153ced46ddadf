"""Pieces the dialect modules share: text validators, documents, common fields and models.

The request models of the dialects are built from the annotated types here (``Text``,
``Query``, ``PositiveInt``, ``Document``...), so a string is checked the same way whichever
wire format it arrives in. The dialect type itself is in ``_dialect``.
"""

from __future__ import annotations

from typing import Annotated, Any

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

__all__ = [
    "DOCUMENT_OBJECT_TAG",
    "DOCUMENT_STRING_TAG",
    "MODEL",
    "RETURN_DOCUMENTS",
    "TOP_N",
    "Document",
    "DocumentObject",
    "OnlyFalse",
    "OnlyRight",
    "OnlyText",
    "PositiveInt",
    "Query",
    "ServiceModel",
    "ServiceResult",
    "Text",
    "Usage",
    "document_json",
    "document_text",
]

# Tags of the tagged unions of documents (here) and bodies (`cohere_v1`); they appear in
# pydantic's error locations, and the server drops them so that users see `documents[2]`,
# not `documents.2.string-document`.
DOCUMENT_STRING_TAG = "string-document"
DOCUMENT_OBJECT_TAG = "object-document"


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
