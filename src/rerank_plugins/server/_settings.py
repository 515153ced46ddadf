"""The app's settings: ``create_app``'s options, checked once, kept on ``app.state.settings``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from rerank_plugins.server._defaults import API_KEY_ENV, default_max_body_bytes, positive_seconds

__all__ = ["Settings", "check_positive_int", "check_seconds", "resolve_api_key"]


@dataclass(frozen=True)
class Settings:
    """What every request handler reads: limits, deadlines and the API key."""

    model: str | None
    api_key: str | None
    max_documents: int
    max_document_chars: int
    max_queue_seconds: float | None
    request_timeout: float | None
    max_body_bytes: int

    @classmethod
    def build(
        cls,
        *,
        model: str | None,
        api_key: str | None,
        max_documents: int,
        max_document_chars: int,
        max_queue_seconds: float | None,
        request_timeout: float | None,
        max_body_bytes: int | None,
    ) -> Settings:
        """Check ``create_app``'s options (``ValueError`` naming the bad one) and keep them."""
        return cls(
            model=model,
            api_key=resolve_api_key(api_key),
            max_documents=check_positive_int("max_documents", max_documents),
            max_document_chars=check_positive_int("max_document_chars", max_document_chars),
            max_queue_seconds=check_seconds("max_queue_seconds", max_queue_seconds),
            request_timeout=check_seconds("request_timeout", request_timeout),
            max_body_bytes=(
                default_max_body_bytes(max_documents, max_document_chars)
                if max_body_bytes is None
                else check_positive_int("max_body_bytes", max_body_bytes)
            ),
        )


def check_positive_int(name: str, value: object) -> int:
    """``value`` when it is an int of at least 1 (not a bool), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive int, got {value!r}."
        raise ValueError(msg)
    return value


def check_seconds(name: str, value: object) -> float | None:
    """``None``, or ``value`` as positive finite seconds (a number, not a string)."""
    if value is None:
        return None
    seconds = None if isinstance(value, str) else positive_seconds(value)
    if seconds is None:
        msg = f"{name} must be a positive number of seconds or None, got {value!r}."
        raise ValueError(msg)
    return seconds


def resolve_api_key(api_key: str | None) -> str | None:
    """The key to require: ``api_key``, else ``$RERANK_PLUGINS_API_KEY``, else none."""
    if api_key is None:
        return os.environ.get(API_KEY_ENV) or None
    if not isinstance(api_key, str) or not api_key:
        msg = (
            f"api_key must be a non-empty string or None, got {api_key!r}. "
            f"Pass None to read it from ${API_KEY_ENV}, or leave both unset for no auth."
        )
        raise ValueError(msg)
    return api_key
