"""HTTP-level refusals: the body-size guard and the handlers that turn errors into JSON answers.

Every refusal body is `{"detail": "<field>: <reason and limit>", "field": "<field>"}`
(`schemas.ErrorResponse`); 503s also carry `Retry-After`.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ie_eval.serve.images import InputError
from ie_eval.serve.schemas import UNION_TAGS

log = logging.getLogger(__name__)

# What routing / body-parsing refusals are about (400: FastAPI could not parse the body).
_HTTP_ERROR_FIELDS = {400: "body", 404: "path", 405: "method"}


class ServiceUnavailable(Exception):
    """Answered 503 + Retry-After: queue full, timed out, or not (yet / any more) serving."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def error_response(status: int, field: str | None, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """Dotted field path of a pydantic error location, without the leading 'body' or union tags."""
    parts = [str(part) for part in loc if part not in UNION_TAGS]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """(field, detail) of the first pydantic error, with a count of the others."""
    first = errors[0]
    field = field_path(first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        field, message = "body", f"not valid JSON ({message})"
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return field, f"{field}: {message}{more}"


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    """Register the JSON answers for validation errors, refusals, 503s and unexpected failures."""

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        field, detail = validation_message(list(exc.errors()))
        return error_response(422, field, detail)

    @app.exception_handler(InputError)
    async def on_input_error(request: Request, exc: InputError) -> JSONResponse:
        return error_response(exc.status, exc.field, str(exc))

    @app.exception_handler(ServiceUnavailable)
    async def on_unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return error_response(503, exc.field, exc.message, headers={"Retry-After": str(retry_after_s)})

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = _HTTP_ERROR_FIELDS.get(exc.status_code)
        detail = f"{field}: {exc.detail}" if field else str(exc.detail)
        return error_response(exc.status_code, field, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, None, f"internal error: {type(exc).__name__}")


class BodyLimitMiddleware:
    """ASGI middleware: a request body over `max_body_bytes` is answered 413 naming the limit.

    A declared Content-Length over the limit is refused before anything is read; a streamed body
    is counted chunk by chunk as the app reads it (the app's own read is the only buffer) and the
    read fails with a 413 as soon as the count passes the limit, before JSON parsing.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.declared_too_large(scope):
            await self.refuse(scope, send)
            return
        await self.app(scope, self.counted(receive), send)

    def counted(self, receive: Any) -> Any:
        """`receive` that raises a 413 InputError once the body read so far passes the limit."""
        seen = 0

        async def receive_counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise InputError("body", f"request body is over max_body_bytes={self.max_body_bytes} bytes", status=413)
            return message

        return receive_counted

    def declared_too_large(self, scope: dict) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                return not value.strip().isdigit() or int(value) > self.max_body_bytes
        return False

    async def refuse(self, scope: dict, send: Any) -> None:
        response = error_response(
            413, "body", f"body: request body is over max_body_bytes={self.max_body_bytes} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, None, send)


class BearerTokenMiddleware:
    """ASGI middleware: requests must carry `Authorization: Bearer <token>` (constant-time compare),
    else 401; `open_paths` (liveness probes) are exempt."""

    def __init__(self, app: Any, token: str, open_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.open_paths = open_paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        sent = next((value for name, value in scope.get("headers", ()) if name == b"authorization"), b"")
        if not hmac.compare_digest(sent, self.expected):
            response = error_response(
                401, "authorization", "authorization: missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
