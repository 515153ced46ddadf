"""One JSON error shape for every error the server answers, and the handlers that produce it.

Every error body is ``{"error": {"type", "message", "code"}, "detail": message}``:
``error`` follows the OpenAI/vLLM convention, ``detail`` is where FastAPI and Jina clients
look for the message. ``detail`` is always a string, also for validation errors (where
FastAPI itself would send a list), so clients need to handle one shape only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rerank_plugins.server.schemas import UNION_TAGS

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from pydantic import ValidationError

__all__ = [
    "APIError",
    "error_response",
    "format_location",
    "format_validation_errors",
    "install_error_handlers",
    "validation_error_from_pydantic",
]

logger = logging.getLogger(__name__)

# Error types by status, for errors raised as Starlette HTTPExceptions (404, 405...).
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "method_not_allowed_error",
    413: "request_too_large_error",
    422: "invalid_request_error",
    429: "overloaded_error",
    500: "internal_server_error",
    503: "service_unavailable_error",
    504: "deadline_error",
}
_MAX_SHOWN_ERRORS = 5
_MAX_INPUT_REPR = 60


class APIError(Exception):
    """An error to answer with ``status_code`` and the shared error body."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type or _TYPE_BY_STATUS.get(status_code, "error")
        self.headers = dict(headers or {})


def error_response(
    status_code: int,
    message: str,
    *,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build the JSON error response every handler returns."""
    kind = error_type or _TYPE_BY_STATUS.get(status_code, "error")
    body = {"error": {"type": kind, "message": message, "code": status_code}, "detail": message}
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def format_location(loc: Sequence[int | str]) -> str:
    """Turn a pydantic error location into ``documents[2].text`` (union tags dropped)."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in UNION_TAGS:
            out += f".{part}" if out else str(part)
    return out or "body"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 3] + "..."


def format_validation_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """Describe pydantic/FastAPI validation errors in one sentence per field."""
    parts: list[str] = []
    errors = list(errors)
    for err in errors[:_MAX_SHOWN_ERRORS]:
        where = format_location(err.get("loc", ()))
        text = f"{where}: {err.get('msg', 'invalid value')}"
        if err.get("type") != "missing" and "input" in err:
            text += f" (got {_short_repr(err['input'])})"
        parts.append(text)
    if len(errors) > _MAX_SHOWN_ERRORS:
        parts.append(f"and {len(errors) - _MAX_SHOWN_ERRORS} more errors")
    return "Invalid request body: " + "; ".join(parts) + "."


def validation_error_from_pydantic(exc: ValidationError, *, hint: str = "") -> APIError:
    """Turn a pydantic ``ValidationError`` on a request body into a 422 :class:`APIError`."""
    message = format_validation_errors(exc.errors(include_url=False))
    return APIError(422, message + hint)


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, APIError):  # pragma: no cover - registered for APIError only
        raise exc
    return error_response(
        exc.status_code, exc.message, error_type=exc.error_type, headers=exc.headers
    )


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"No route {request.method} {request.url.path}. See GET /docs for the API."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    return error_response(exc.status_code, message, headers=exc.headers)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    return error_response(422, format_validation_errors(exc.errors()))


async def _fallback_handler(request: Request, exc: Exception) -> JSONResponse:
    # Starlette calls this from ServerErrorMiddleware and then re-raises `exc`, so the
    # server still logs the traceback; the message names the type only, not internals.
    logger.error(
        "Unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
    )
    return error_response(
        500,
        f"Internal server error ({type(exc).__name__}). The server log has the traceback; "
        "the server keeps serving other requests.",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the shared JSON shape."""
    app.add_exception_handler(APIError, _api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(Exception, _fallback_handler)
