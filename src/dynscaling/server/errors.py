"""OpenAI-shaped errors for clients, and masking of secrets in any text that came from the upstream."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["ApiError", "SecretMask", "error_body"]


def error_body(message: str, code: str | None, type_: str = "invalid_request_error",
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ApiError(Exception):
    """An error for the client, OpenAI-shaped: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, code: str | None, type_: str = "invalid_request_error",
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.code, self.type, self.param)


def invalid(param: str, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 naming the request field at fault."""
    return ApiError(400, f"{param}: {message}", code, param=param)


# Tokens that look like keys, whoever's they are: OpenAI-style secret keys and bearer credentials.
_KEY_LIKE = re.compile(r"(?:\bsk-[A-Za-z0-9_\-]{6,}|(?i:bearer)\s+[A-Za-z0-9_\-.=:+/]{6,})")


class SecretMask:
    """Replaces the server's secrets (and anything shaped like a key) with ``***`` in upstream text."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _KEY_LIKE.sub("***", text)

    def bytes(self, data: bytes) -> bytes:
        if not data:
            return data
        return self.text(data.decode("utf-8", errors="replace")).encode("utf-8")

    def __contains__(self, text: str) -> bool:
        return any(s in text for s in self._secrets)
