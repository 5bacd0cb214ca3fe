"""4. The API mix at 100 concurrent clients on the large history: 25 each on the partner dashboard, the
commissions list, the links list (the main partner's) and purchase events (other partners' customers), all at
once, each client sending its next request as soon as the last is answered. p99 per endpoint."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import asdict
from typing import Any

import httpx

from bench import common, dashboard
from bench.generate import credentials
from bench.options import Options
from bench.purchase import script as purchase_script

CLIENTS_EACH = 25
TARGET_P99_MS = 50.0


def get_script(path: str, headers: dict[str, str]) -> str:
    values = ", ".join(f'["{name}"] = "{value}"' for name, value in headers.items())
    return f"""
local headers = {{{values}}}
request = function()
  return wrk.format("GET", "{path}", headers)
end
"""


def run_engine(engine: common.Engine, options: Options) -> dict[str, Any]:
    url, generated = dashboard.history(engine, dataclasses.replace(options, reuse_history=True))
    tokens = credentials(url, generated.main_partner_id)
    bearer = {"Authorization": f"Bearer {tokens.partner_token}"}
    others = [int(customer.removeprefix("c-")) for customer in generated.other_customer_ids]

    def scripts(prefix: str) -> dict[str, str]:
        purchases = purchase_script(tokens.api_key, prefix, max(others))
        return {
            "GET /affiliate/dashboard": get_script("/affiliate/dashboard", bearer),
            "GET /affiliate/commissions": get_script("/affiliate/commissions", bearer),
            "GET /affiliate/links": get_script("/affiliate/links", bearer),
            "POST /events/purchase": purchases.replace("math.random(1, ", f"math.random({min(others)}, "),
        }

    workers = common.WORKERS[engine]
    common.log(f"mix/{engine}: 4 x {CLIENTS_EACH} clients, {workers} worker(s)")
    with common.serve("partners.app:create_app", url, workers=workers, name=f"mix-{engine}") as server:
        for name, lua in scripts(f"warm-{secrets.token_hex(3)}").items():
            path = name.split(" ", 1)[1]
            if name.startswith("GET"):
                status = httpx.get(server.base_url + path, headers=bearer, timeout=120).status_code
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}")
            common.wrk(server.base_url, lua, connections=2, seconds=options.warmup, threads=1)
        runs = {
            name: common.Wrk(server.base_url, lua, CLIENTS_EACH, options.seconds * 2, threads=1).start()
            for name, lua in scripts(f"mix-{secrets.token_hex(3)}").items()
        }
        with options.profiler(server, f"mix-{engine}", options.seconds * 2):
            results = {name: run.result() for name, run in runs.items()}
    for name, result in results.items():
        common.log(f"  {name}: {result.rps:,.0f} req/s, p50 {result.p50_ms} ms, p99 {result.p99_ms} ms")
    return {"engine": engine, "workers": workers, "clients_each": CLIENTS_EACH, "results": results}


def run(options: Options) -> dict[str, Any]:
    engines = {engine: run_engine(engine, options) for engine in options.engines}
    rows = []
    for engine, data in engines.items():
        results: dict[str, common.LoadResult] = data["results"]
        for name, result in results.items():
            rows.append(
                [
                    engine,
                    name,
                    result.rps,
                    result.p50_ms,
                    result.p95_ms,
                    result.p99_ms,
                    result.failed,
                    common.verdict(result.requests > 0 and result.p99_ms < TARGET_P99_MS)
                    if result.requests
                    else "MISSED (no answer)",
                ]
            )
        total = sum(result.rps for result in results.values())
        rows.append([engine, "all (100 clients)", round(total, 1), "", "", "", "", ""])
    table = common.markdown_table(
        ["engine", "endpoint", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "p99 < 50 ms"], rows
    )
    table = "### API mix (100 concurrent clients)\n\n" + table
    data = {"settings": asdict(options.settings()), "engines": engines}
    common.write_results("mix", data, table)
    return data
