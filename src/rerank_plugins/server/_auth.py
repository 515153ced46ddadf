"""Bearer-token auth: the dependency every endpoint but ``/health`` and the docs gets."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rerank_plugins.server._defaults import API_KEY_ENV
from rerank_plugins.server._errors import APIError

__all__ = ["auth_dependencies"]


def auth_dependencies(api_key: str | None) -> list[Any]:
    """FastAPI dependencies that require ``Authorization: Bearer <api_key>`` (none if no key)."""
    if api_key is None:
        return []
    expected = api_key.encode()
    bearer = HTTPBearer(auto_error=False, description="The server's API key.")

    async def check_api_key(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        if credentials is None:
            raise APIError(
                401,
                "Missing API key. Send the header 'Authorization: Bearer <key>' with the key "
                f"the server was started with (--api-key or ${API_KEY_ENV}).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise APIError(
                401,
                "Invalid API key in the Authorization header. Send the key the server was "
                f"started with (--api-key or ${API_KEY_ENV}).",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return [Depends(check_api_key)]
