"""Request-body size limit, enforced before the body is read whole (ASGI middleware).

Without it, any body is read into memory and parsed: a 64 MB JSON body costs the server
~200 MB and a few 250 MB bodies several GB, whatever the document limits say, because those
are checked only after parsing. A declared ``Content-Length`` over the limit is answered 413
at once, without reading the body; a body without one (chunked) is counted while it streams
in and answered 413 as soon as it passes the limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rerank_plugins.server._errors import APIError, error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware"]

# The rest of the body stays unread: the connection cannot carry another request.
_CLOSE = {"Connection": "close"}


def _too_large(limit: int, size: str) -> str:
    return (
        f"The request body is larger than max_body_bytes={limit} ({size}). Send fewer or "
        "shorter documents per request, or raise the limit with `rerank-plugins serve "
        "--max-body-bytes N` (create_app(max_body_bytes=N))."
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:  # the ASGI server rejects malformed framing itself
                return None
    return None


class BodyLimitMiddleware:
    """Answer 413 to HTTP requests whose body is over ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call, refusing oversized HTTP bodies."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            message = _too_large(limit, f"Content-Length: {declared}")
            await error_response(413, message, headers=_CLOSE)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the endpoint's body read, so the app's error handlers
                    # answer it in the shared shape.
                    raise APIError(
                        413, _too_large(limit, "the chunked body passed it"), headers=_CLOSE
                    )
            return message

        await self.app(scope, limited_receive, send)
