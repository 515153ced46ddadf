"""The client's error messages: what failed, the server's own words, and what to do.

Every function returns a :class:`~rerank_plugins.errors.RemoteRerankError` for the caller
to raise; the sync and async paths build their errors here only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rerank_plugins.errors import RemoteRerankError

if TYPE_CHECKING:
    import httpx

    from rerank_plugins.client._settings import Settings

GATEWAY_TIMEOUT = 504
_MAX_MESSAGE_CHARS = 500


def status_error(
    settings: Settings, protocol: str, path: str, url: str, response: httpx.Response, count: int
) -> RemoteRerankError:
    """A final error answer to a ``protocol`` request of ``count`` documents at ``path``."""
    status = response.status_code
    head = f"POST {url} answered {status} {response.reason_phrase}: {server_message(response)}"
    if status in (401, 403):
        hint = (
            "The server needs an API key: pass RemoteScorer(..., api_key='...'), sent as "
            "'Authorization: Bearer <key>'."
            if not settings.api_key_set
            else "The server rejected api_key; check that it is the server's key."
        )
    elif status == 404:
        hint = (
            f"Check base_url={settings.base_url!r} (the server root, e.g. "
            f"'http://localhost:8080') and protocol={settings.protocol!r}, which posts to "
            f"{path}."
        )
    elif status == 413:
        hint = (
            "A document (or the query) is too long for the server. Shorten it, or raise "
            "the server's limit."
            if count == 1 or is_length_error(response.text)
            else "The request was too large for the server."
        )
    elif status == GATEWAY_TIMEOUT:
        hint = (
            "The answer did not come in time; raise the server's or the gateway's timeout, "
            "send fewer documents per request (max_documents_per_request=), or pass "
            "retry_read_timeouts=True to retry."
        )
    elif status >= 500:
        hint = "The server failed; check its logs. Server errors are not retried."
    elif status in (400, 415, 422):
        hint = (
            f"The server rejected the {protocol!r} request body; check that "
            f"protocol={settings.protocol!r} matches the server (or use protocol='auto')."
        )
        if settings.model is None and protocol in ("cohere", "jina"):
            hint += f" The {protocol} API needs a model name: pass model='...'."
    else:
        hint = ""
    message = f"{sentence(head)} {hint}".rstrip()
    return RemoteRerankError(message, status_code=status, body=response.text)


def exhausted_error(url: str, response: httpx.Response, attempts: int) -> RemoteRerankError:
    """The last answer (429, 502, 503, or a 504 when retried) after ``attempts`` attempts."""
    status = response.status_code
    hint = (
        "The server is overloaded; send fewer or smaller requests, or raise max_retries="
        if status == 429
        else "The server is unavailable; check its logs, or retry later (max_retries= sets "
        "how often)"
    )
    head = f"POST {url} answered {status} {response.reason_phrase} after {_tries(attempts)}: "
    message = f"{sentence(head + server_message(response))} {hint}."
    return RemoteRerankError(message, status_code=status, body=response.text)


def transport_error(
    settings: Settings, url: str, err: Exception, attempts: int
) -> RemoteRerankError:
    """A request that got no answer (timeout, connection error) after ``attempts`` attempts."""
    import httpx  # loaded already: only a transport calls this

    tries = _tries(attempts)
    if isinstance(err, httpx.TimeoutException):
        message = (
            f"POST {url} timed out after {settings.timeout:g} s ({tries}; "
            f"{type(err).__name__}). Raise timeout= (now {settings.timeout:g}), or send fewer "
            "documents per request with max_documents_per_request=."
        )
        if isinstance(err, httpx.ReadTimeout) and not settings.retry_read_timeouts:
            message += (
                " Read timeouts are not retried, as the server is likely still busy with "
                "the request; retry_read_timeouts=True retries them."
            )
    elif isinstance(err, (httpx.NetworkError, httpx.RemoteProtocolError)):
        message = (
            f"Could not reach {url} ({tries}; {type(err).__name__}: {err}). Check that the "
            f"server is running and that base_url={settings.base_url!r} is right."
        )
    else:
        message = f"POST {url} failed: {type(err).__name__}: {err}."
    return RemoteRerankError(message)


def not_json_error(url: str, response: httpx.Response) -> RemoteRerankError:
    """A success answer whose body is not JSON (a proxy's page, say)."""
    status = response.status_code
    msg = (
        f"POST {url} answered {status} with a body that is not JSON: "
        f"{preview(response.text)}. Is base_url a rerank server?"
    )
    return RemoteRerankError(msg, status_code=status, body=response.text)


def detection_error(
    settings: Settings, refused: Sequence[tuple[str, str, httpx.Response]]
) -> RemoteRerankError:
    """No API found: each of ``refused`` is (protocol, url, answer) of one probe."""
    tried = "; ".join(
        f"POST {url} ({protocol} body) -> {response.status_code}: {server_message(response)}"
        for protocol, url, response in refused
    )
    informative = [r for _, _, r in refused if r.status_code != 404] or [refused[0][2]]
    last = informative[-1]
    message = (
        f"Found no rerank API at {settings.base_url!r}. Tried: {tried}. Check base_url, or "
        "pass protocol= explicitly ('cohere', 'jina', 'tei', 'vllm' or 'infinity')."
    )
    return RemoteRerankError(message, status_code=last.status_code, body=last.text)


def is_length_error(text: str) -> bool:
    """Whether a 413 is about one text's length (our server's max_document_chars), not count."""
    return "max_document_chars" in text


def server_message(response: httpx.Response) -> str:
    """The error message in a response body, from the usual places, else the body itself."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        candidates = [
            data.get("detail"),  # ours, FastAPI, Jina
            error.get("message") if isinstance(error, dict) else error,  # ours, vLLM / TEI
            data.get("message"),  # Cohere, older vLLM
        ]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate:
                return preview(candidate)
        if isinstance(data.get("detail"), list):  # FastAPI validation errors
            return preview(repr(data["detail"]))
    return preview(response.text) if response.text else "(empty body)"


def sentence(text: str) -> str:
    """``text`` ending with a full stop (servers' messages may or may not have one)."""
    return text if text.endswith((".", "!", "?")) else text + "."


def preview(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """``text`` stripped and cut to ``limit`` characters (ending in "...")."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tries(attempts: int) -> str:
    return f"{attempts} attempt{'s' if attempts > 1 else ''}"
