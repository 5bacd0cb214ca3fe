"""CPU per request of partner endpoints in one process: `python -m bench.inprocess [PATH...] [--engine E]`.

The app is created in this process on the dashboard's history (generated on first use, as `bench.run dashboard`
does) and called on its ASGI interface, one request at a time, no network: the CPU a request costs the process
(`time.process_time`: the worker's share, and SQLite's queries on that engine), without wrk, the other worker or
PostgreSQL's backends on the same cores. On a shared machine whose throughput moves by a third from one minute to
the next, it is the quietest before/after figure: run it from two checkouts, alternating (bench/README.md, round 13).
Not part of `make bench`; prints, writes nothing. The app's access log goes to stderr (`2>/dev/null`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import cast

import uvloop
from starlette.types import Message, Scope

from bench import common, dashboard
from bench.generate import credentials
from bench.options import Options
from partners.app import create_app, tune_garbage_collector
from partners.settings import Settings

PATHS = ("/health", "/affiliate/me", "/affiliate/commissions", "/affiliate/links", "/affiliate/dashboard")
WARM_UP = 50


async def _call(app: object, path: str, token: str) -> int:
    """One GET through the app's whole stack; returns the status."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)  # type: ignore[operator]
    return statuses[0]


async def measure(paths: list[str], token: str, requests: int) -> None:
    app = create_app(Settings())  # read from the environment `main` set, whatever was cached before
    async with app.router.lifespan_context(app):
        tune_garbage_collector()
        for path in paths:
            for _ in range(WARM_UP):
                status = await _call(app, path, token)
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}")
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(requests):
                await _call(app, path, token)
            cpu_us = (time.process_time() - cpu) / requests * 1e6
            wall_us = (time.perf_counter() - wall) / requests * 1e6
            print(f"GET {path}: {cpu_us:,.0f} µs of CPU, {wall_us:,.0f} µs wall per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=list(PATHS), help="GET paths of the main partner")
    parser.add_argument("--engine", choices=common.ENGINES, default="postgresql")
    parser.add_argument("--requests", type=int, default=1000, help="requests per path")
    arguments = parser.parse_args()
    engine = cast(common.Engine, arguments.engine)
    url, generated = dashboard.history(engine, dataclasses.replace(Options(), reuse_history=True))
    token = credentials(url, generated.main_partner_id).partner_token
    os.environ.update(common.server_env(url))  # the production settings, as the benchmarks' servers run
    uvloop.run(measure(arguments.paths, token, arguments.requests))  # the servers' event loop


if __name__ == "__main__":
    main()
