"""A real uvicorn server: clicks survive a graceful shutdown."""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn

from partners.db.session import Database
from tests.tracking.conftest import BROWSER_UA, World, add_link, eventually, recorder_of, stored_clicks

CLICKS = 200


def click_id_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["click_id"][0]


async def test_two_hundred_clicks_on_a_real_server_are_all_stored_after_shutdown(
    app: Any, database: Database, world: World
) -> None:
    await add_link(database, world.alice, code="live")
    # Nothing is written before shutdown (no timer, no full batch): stop() must write it all.
    recorder = recorder_of(app)
    recorder.flush_interval, recorder.batch_size = 3600, CLICKS + 1
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:

        async def started() -> bool:
            return server.started

        await eventually(started)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"User-Agent": BROWSER_UA}, timeout=30
        ) as http:
            responses = await asyncio.gather(*(http.get("/r/live") for _ in range(CLICKS)))
        click_ids = {click_id_of(response) for response in responses}
        assert len(click_ids) == CLICKS
        assert await stored_clicks(database) == []
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)
        listener.close()

    stored = await stored_clicks(database)
    assert {click.click_id for click in stored} == click_ids
    assert all(click.partner_id == world.alice.id and not click.is_bot for click in stored)
