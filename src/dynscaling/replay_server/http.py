"""The small HTTP/1.1 reader and writer the replay server needs: Content-Length bodies, keep-alive, and
OpenAI-shaped errors. (Chunked responses for streaming are written by the server.)"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["ApiError", "BadHttpError", "HttpRequest", "json_bytes", "read_request", "response_head", "write_json"]

_MAX_BODY = 64 * 1024 * 1024
_MAX_HEADERS = 100


class ApiError(Exception):
    """An OpenAI-shaped error response."""

    def __init__(self, status: int, message: str, *, code: str, type_: str = "invalid_request_error",
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}


class BadHttpError(Exception):
    """The bytes on the connection are not HTTP/1.1 we can read; answer 400 and close."""


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    reader: asyncio.StreamReader


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def response_head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Server: dynscaling-replay"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> HttpRequest | None:
    try:
        line = await reader.readline()
    except (ValueError, asyncio.LimitOverrunError):
        raise BadHttpError("request line too long") from None
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadHttpError("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    while True:
        try:
            raw = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            raise BadHttpError("header line too long") from None
        if raw in (b"\r\n", b"\n"):
            break
        if not raw:
            raise asyncio.IncompleteReadError(b"", None)
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or len(headers) >= _MAX_HEADERS:
            raise BadHttpError("malformed or too many headers")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadHttpError("chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadHttpError("Content-Length is not a number") from None
    if not 0 <= length <= _MAX_BODY:
        raise BadHttpError(f"Content-Length must be between 0 and {_MAX_BODY}")
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await reader.readexactly(length) if length else b""
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    return HttpRequest(method, target.split("?", 1)[0].rstrip("/") or "/", headers, body, keep_alive, reader)

async def write_json(writer: asyncio.StreamWriter, status: int, body: Any, *, keep_alive: bool,
                      headers: dict[str, str] | None = None) -> None:
    payload = json_bytes(body)
    head = {"Content-Type": "application/json", "Content-Length": str(len(payload)),
            "Connection": "keep-alive" if keep_alive else "close", **(headers or {})}
    writer.write(response_head(status, head) + payload)
    await writer.drain()
