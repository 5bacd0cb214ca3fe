"""Exception handlers: every error leaves as application/problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from partners.kit.errors import PROBLEM_JSON, AppError
from partners.kit.logging import get_logger

log = get_logger("partners.errors")


def problem_response(problem: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem, status_code=problem["status"], media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) if parts else str(loc[-1]) if loc else "request"


async def handle_app_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)
    headers = {"Retry-After": str(error.extra["retry_after"])} if "retry_after" in error.extra else None
    return problem_response(error.to_problem(instance=request.url.path), headers)


async def handle_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [{"field": _field_name(item["loc"]), "message": item["msg"]} for item in error.errors()]
    first = errors[0] if errors else {"field": "request", "message": "invalid"}
    return problem_response(
        {
            "type": "https://partners.namaskah.local/problems/validation",
            "title": "Invalid request",
            "status": 422,
            "detail": f"{first['field']}: {first['message']}",
            "instance": request.url.path,
            "errors": errors,
        }
    )


async def handle_http_exception(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return problem_response(
        {
            "type": "about:blank",
            "title": str(error.detail) if error.detail else "HTTP error",
            "status": error.status_code,
            "detail": str(error.detail),
            "instance": request.url.path,
        },
        dict(error.headers) if error.headers else None,
    )


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    return problem_response(
        {
            "type": "about:blank",
            "title": "Internal server error",
            "status": 500,
            "detail": "An unexpected error occurred; it has been logged.",
            "instance": request.url.path,
        }
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, handle_app_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
