"""Job handlers by name.

A handler is `async def handler(session, payload) -> None`. It runs inside the job's own write transaction and
must not commit; its writes and the job's completion commit together. Delivery is at-least-once, so every
handler must be idempotent (check before you act, or use unique keys).

A domain puts its handlers in its `tasks.py` and adds that module to HANDLER_MODULES; importing the module
registers them (and any schedules it declares).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

JobHandler = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]
HandlerT = TypeVar("HandlerT", bound=JobHandler)

HANDLER_MODULES: tuple[str, ...] = (
    "partners.jobs.tasks",
    "partners.mail.tasks",
    "partners.programs.tasks",
    "partners.commissions.tasks",
    "partners.payouts.tasks",
    "partners.disputes.tasks",
)

_handlers: dict[str, JobHandler] = {}


def job_handler(name: str) -> Callable[[HandlerT], HandlerT]:
    """Register the decorated coroutine function as the handler of jobs called `name`."""

    def register(handler: HandlerT) -> HandlerT:
        existing = _handlers.get(name)
        if existing is not None and existing is not handler:
            raise ValueError(f"job handler {name!r} is already registered by {existing.__qualname__}")
        _handlers[name] = handler
        return handler

    return register


def get_handler(name: str) -> JobHandler | None:
    return _handlers.get(name)


def handler_names() -> list[str]:
    return sorted(_handlers)


def load_handlers() -> None:
    """Import every handler module so its handlers and schedules are registered."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)
