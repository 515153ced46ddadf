"""The checked, immutable settings of one :class:`RemoteScorer`, shared by all its parts."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rerank_plugins._version import __version__
from rerank_plugins.server._defaults import REQUEST_TIMEOUT_HEADER

RemoteProtocol = Literal["auto", "cohere", "jina", "tei", "vllm", "infinity"]
PROTOCOLS: tuple[RemoteProtocol, ...] = ("auto", "cohere", "jina", "tei", "vllm", "infinity")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the constructor was given, checked; see :class:`RemoteScorer` for each field."""

    base_url: str
    protocol: RemoteProtocol
    model: str | None
    """The model name sent in each request (``None``: send none)."""
    timeout: float
    max_retries: int
    retry_backoff: float
    retry_read_timeouts: bool
    max_documents_per_request: int | None
    headers: Mapping[str, str]
    """Every request's headers: User-Agent, X-Request-Timeout, Authorization, the caller's."""
    extra_body: Mapping[str, Any]
    api_key_set: bool

    @property
    def root(self) -> str:
        """The server root: ``base_url`` minus a trailing ``/v1`` or ``/v2``."""
        return re.sub(r"/v[12]$", "", self.base_url)

    @classmethod
    def create(
        cls,
        base_url: object,
        *,
        api_key: object,
        protocol: object,
        model: object,
        timeout: object,
        max_retries: object,
        retry_backoff: object,
        retry_read_timeouts: object,
        max_documents_per_request: object,
        headers: Mapping[str, str] | None,
        extra_body: Mapping[str, Any] | None,
    ) -> Settings:
        """Check every argument; raise ``ValueError``/``TypeError`` naming the bad one."""
        url = _check_base_url(base_url)
        if protocol not in PROTOCOLS:
            msg = f"protocol must be one of {', '.join(map(repr, PROTOCOLS))}, got {protocol!r}."
            raise ValueError(msg)
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            msg = f"api_key must be a non-empty string or None, got {api_key!r}."
            raise ValueError(msg)
        if model is not None and (not isinstance(model, str) or not model.strip()):
            msg = f"model must be a non-empty string or None, got {model!r}."
            raise ValueError(msg)
        seconds = _positive_number("timeout", timeout)
        retries = _non_negative_int("max_retries", max_retries)
        backoff = _non_negative_number("retry_backoff", retry_backoff)
        if not isinstance(retry_read_timeouts, bool):
            msg = f"retry_read_timeouts must be True or False, got {retry_read_timeouts!r}."
            raise TypeError(msg)
        per_request = (
            None
            if max_documents_per_request is None
            else _positive_int("max_documents_per_request", max_documents_per_request)
        )
        all_headers = {"User-Agent": f"rerank-plugins/{__version__}", **dict(headers or {})}
        if REQUEST_TIMEOUT_HEADER.lower() not in {name.lower() for name in all_headers}:
            all_headers[REQUEST_TIMEOUT_HEADER] = f"{seconds:g}"
        if api_key is not None:
            all_headers["Authorization"] = f"Bearer {api_key}"
        return cls(
            base_url=url,
            protocol=protocol,
            model=model,
            timeout=seconds,
            max_retries=retries,
            retry_backoff=backoff,
            retry_read_timeouts=retry_read_timeouts,
            max_documents_per_request=per_request,
            headers=all_headers,
            extra_body=dict(extra_body or {}),
            api_key_set=api_key is not None,
        )


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
        msg = (
            f"base_url must be an http:// or https:// URL of the server root, got "
            f"{base_url!r}. Example: RemoteScorer('http://localhost:8080')."
        )
        raise ValueError(msg)
    return base_url.rstrip("/")


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive int or None, got {value!r}."
        raise ValueError(msg)
    return value


def _non_negative_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        msg = f"{name} must be an int >= 0, got {value!r}."
        raise ValueError(msg)
    return value


def _positive_number(name: str, value: object) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        msg = f"{name} must be a positive number of seconds, got {value!r}."
        raise ValueError(msg)
    return float(value)


def _non_negative_number(name: str, value: object) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        msg = f"{name} must be a number of seconds >= 0, got {value!r}."
        raise ValueError(msg)
    return float(value)
