"""The web layer: the partner portal (/portal), the staff console (/console) and the demo shop (/demo-shop).

Server-rendered Jinja2 pages with htmx and Chart.js (vendored in static/vendor/). The pages call the same
services as the JSON API.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from partners.web.templating import STATIC_DIR


def install_web(app: FastAPI) -> None:
    """Add the page routers and serve /static."""
    from partners.web import (
        console,
        console_admin,
        console_money,
        console_security,
        demo_shop,
        portal,
        portal_auth,
        portal_disputes,
    )

    for module in (
        portal_auth,
        portal,
        portal_disputes,
        console,
        console_money,
        console_admin,
        console_security,
        demo_shop,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
