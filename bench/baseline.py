"""The click benchmark's baseline: a bare Starlette app answering `/r/{code}` with the same 302 the product
sends (Location with a click id, the click cookie, no-store), served by the same uvicorn settings."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DESTINATION = "https://namaskah.app/?utm_source=bench&ref=bench&np_click="


async def redirect(request: Request) -> Response:
    click_id = secrets.token_hex(16)
    headers = {
        "Location": DESTINATION + click_id,
        "Set-Cookie": f"np_click={click_id}; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax",
        "Cache-Control": "no-store",
    }
    return Response(status_code=302, headers=headers)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    return Starlette(routes=[Route("/r/{code}", redirect), Route("/health", health)])
