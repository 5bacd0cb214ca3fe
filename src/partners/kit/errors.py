"""Errors that carry their HTTP status, rendered as RFC 9457 problem+json.

Services raise these; the app turns them into responses. A field error names the failing field
(`errors: [{"field": "amount", "message": "..."}]`) so a client can point at it.
"""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": f"https://partners.namaskah.local/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            problem["instance"] = instance
        if self.field:
            problem["errors"] = [{"field": self.field, "message": self.detail}]
        problem.update(self.extra)
        return problem


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class Forbidden(AppError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(AppError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(AppError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class IdempotencyConflict(Conflict):
    title = "Idempotency key reused with another payload"
    type_slug = "idempotency-conflict"


class Unprocessable(AppError):
    status = 422
    title = "Unprocessable content"
    type_slug = "unprocessable"


class InsufficientFunds(Unprocessable):
    title = "Insufficient funds"
    type_slug = "insufficient-funds"


class RateLimited(AppError):
    status = 429
    title = "Too many requests"
    type_slug = "rate-limited"
